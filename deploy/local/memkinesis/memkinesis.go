// Package memkinesis is a Kinesis endpoint for benchmarks only: a fixed,
// open stream whose records are held in memory as GetRecords answers
// encoded once, so serving them costs a memory copy. kinesalite, a
// Node.js process on the same cores, serves about 15,000 records/s and
// bounds whatever runs against it; this does not, so a benchmark of
// `tapline run` against it measures tapline.
//
// Its answers are shaped as Kinesis's: 56-digit sequence numbers, and
// arrival times as Kinesis's Java backend writes them (Double.toString:
// 1.764266400123E9), which cost a decoder more than the decimals
// kinesalite writes.
//
// It answers the calls the KCL makes in polling mode: ListShards,
// DescribeStream, DescribeStreamSummary, GetShardIterator (TRIM_HORIZON,
// LATEST, AT/AFTER_SEQUENCE_NUMBER) and GetRecords. Nothing else; no
// writes, no authentication, no throttling.
package memkinesis

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Server serves one stream.
type Server struct {
	URL     string
	stream  string
	batch   int
	arrival json.Number
	shards  []*shard
	srv     *http.Server
	ln      net.Listener
}

type shard struct {
	id      string
	records [][]byte
	answers [][]byte // answer a holds records [a*batch, (a+1)*batch)
}

// Start serves stream with shards[i] as the records of shard i, answered
// batch records at a time, on a loopback port.
func Start(stream string, shards [][][]byte, batch int) (*Server, error) {
	s := &Server{stream: stream, batch: batch, arrival: KinesisTime(time.Now().UnixMilli())}
	for i, recs := range shards {
		sh := &shard{id: fmt.Sprintf("shardId-%012d", i), records: recs}
		for from := 0; from < len(recs); from += batch {
			b, err := s.answer(i, sh, from)
			if err != nil {
				return nil, err
			}
			sh.answers = append(sh.answers, b)
		}
		s.shards = append(s.shards, sh)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.ln, s.URL = ln, "http://"+ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// answer encodes shard i's records from from to the end of from's
// answer (the next multiple of batch).
func (s *Server) answer(i int, sh *shard, from int) ([]byte, error) {
	to := min(from-from%s.batch+s.batch, len(sh.records))
	type rec struct {
		Data                        string
		PartitionKey                string
		SequenceNumber              string
		ApproximateArrivalTimestamp json.Number
	}
	var answer struct {
		Records            []rec
		NextShardIterator  string
		MillisBehindLatest int64
	}
	for k := from; k < to; k++ {
		answer.Records = append(answer.Records, rec{base64.StdEncoding.EncodeToString(sh.records[k]), "pk", seq(i, k), s.arrival})
	}
	answer.NextShardIterator = iterator(i, to)
	answer.MillisBehindLatest = int64(len(sh.records) - to)
	return json.Marshal(answer)
}

// Stop closes the server.
func (s *Server) Stop() { s.srv.Close() }

// seqPrefix stands for the digits a real shard's sequence numbers share.
const seqPrefix = "4959033827149025660855969253836157"

// seq is record k of shard i's sequence number: 56 digits as Kinesis's,
// ordered within a shard, and it names its position.
func seq(i, k int) string { return fmt.Sprintf("%s%05d%017d", seqPrefix, i, k) }

// KinesisTime is an arrival time of ms (Unix milliseconds) as Kinesis
// writes it: seconds as Java's Double.toString writes a number from 10^7
// up, one digit, a point, the rest without trailing zeros (at least one),
// the exponent.
func KinesisTime(ms int64) json.Number {
	d := strconv.FormatInt(ms, 10)
	frac := strings.TrimRight(d[1:], "0")
	if frac == "" {
		frac = "0"
	}
	return json.Number(d[:1] + "." + frac + "E" + strconv.Itoa(len(d)-4))
}

func iterator(i, k int) string { return fmt.Sprintf("it-%d-%d", i, k) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in map[string]any
	json.Unmarshal(body, &in)
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch op {
	case "GetRecords":
		it, _ := in["ShardIterator"].(string)
		var i, k int
		if _, err := fmt.Sscanf(it, "it-%d-%d", &i, &k); err != nil || i < 0 || i >= len(s.shards) || k < 0 {
			fail(w, "ExpiredIteratorException", "unknown iterator "+it)
			return
		}
		sh := s.shards[i]
		if k >= len(sh.records) { // the tip of an open stream
			fmt.Fprintf(w, `{"Records":[],"NextShardIterator":%q,"MillisBehindLatest":0}`, it)
			return
		}
		if k%s.batch == 0 {
			w.Write(sh.answers[k/s.batch])
			return
		}
		// A restart from a checkpoint inside an answer (the KCL after a
		// lease is lost and taken again): encoded now, up to the next
		// answer's start. Without it such a shard was stuck for good.
		b, err := s.answer(i, sh, k)
		if err != nil {
			fail(w, "InternalFailure", err.Error())
			return
		}
		w.Write(b)
	case "GetShardIterator":
		id, _ := in["ShardId"].(string)
		i := s.index(id)
		if i < 0 {
			fail(w, "ResourceNotFoundException", "no shard "+id)
			return
		}
		k := 0
		switch in["ShardIteratorType"] {
		case "LATEST":
			k = len(s.shards[i].records)
		case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
			sq, _ := in["StartingSequenceNumber"].(string)
			v, err := strconv.Atoi(sq[min(len(seqPrefix)+5, len(sq)):])
			if err != nil || len(sq) != 56 {
				fail(w, "InvalidArgumentException", "sequence number "+sq)
				return
			}
			k = v
			if in["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER" {
				k++
			}
		}
		fmt.Fprintf(w, `{"ShardIterator":%q}`, iterator(i, k))
	case "ListShards":
		json.NewEncoder(w).Encode(map[string]any{"Shards": s.shardList()})
	case "DescribeStream":
		json.NewEncoder(w).Encode(map[string]any{"StreamDescription": map[string]any{
			"StreamName": s.stream, "StreamARN": s.arn(), "StreamStatus": "ACTIVE", "Shards": s.shardList(),
			"HasMoreShards": false, "RetentionPeriodHours": 24, "StreamCreationTimestamp": 1.7e9,
			"EnhancedMonitoring": []any{}, "EncryptionType": "NONE",
		}})
	case "DescribeStreamSummary":
		json.NewEncoder(w).Encode(map[string]any{"StreamDescriptionSummary": map[string]any{
			"StreamName": s.stream, "StreamARN": s.arn(), "StreamStatus": "ACTIVE", "OpenShardCount": len(s.shards),
			"RetentionPeriodHours": 24, "StreamCreationTimestamp": 1.7e9, "EnhancedMonitoring": []any{},
		}})
	default:
		fail(w, "UnknownOperationException", op)
	}
}

func (s *Server) arn() string { return "arn:aws:kinesis:us-east-1:000000000000:stream/" + s.stream }

func (s *Server) index(id string) int {
	for i, sh := range s.shards {
		if sh.id == id {
			return i
		}
	}
	return -1
}

func (s *Server) shardList() []any {
	var out []any
	space := new(big.Int).Lsh(big.NewInt(1), 128) // hash keys are [0, 2^128)
	step := new(big.Int).Div(space, big.NewInt(int64(len(s.shards))))
	for i, sh := range s.shards {
		start := new(big.Int).Mul(step, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, step), big.NewInt(1))
		if i == len(s.shards)-1 {
			end.Sub(space, big.NewInt(1))
		}
		out = append(out, map[string]any{
			"ShardId":             sh.id,
			"HashKeyRange":        map[string]string{"StartingHashKey": start.String(), "EndingHashKey": end.String()},
			"SequenceNumberRange": map[string]string{"StartingSequenceNumber": seq(i, 0)},
		})
	}
	return out
}

func fail(w http.ResponseWriter, typ, msg string) {
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"__type":%q,"message":%q}`, typ, msg)
}
