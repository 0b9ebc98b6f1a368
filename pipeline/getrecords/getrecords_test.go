package getrecords

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/awslabs/kinesis-aggregation/go/v2/deaggregator"
	kplrecords "github.com/awslabs/kinesis-aggregation/go/v2/records"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// body answers every request with one GetRecords body, in memory.
type body struct {
	b      []byte
	status int
}

func (h *body) Do(*http.Request) (*http.Response, error) {
	st := h.status
	if st == 0 {
		st = 200
	}
	return &http.Response{StatusCode: st, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body: io.NopCloser(bytes.NewReader(h.b)), ContentLength: int64(len(h.b))}, nil
}

func clients(h *body) (sdk, fast *kinesis.Client, p *Protocol) {
	cfg := aws.Config{Region: "us-east-1", HTTPClient: h, Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1}
	sdk = kinesis.NewFromConfig(cfg)
	fast = kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		Install(o)
		p = o.Protocol.(*Protocol)
	})
	return sdk, fast, p
}

// describe renders an output for comparison: every field and whether each
// pointer is set, nil and empty lists alike.
func describe(o *kinesis.GetRecordsOutput, err error) string {
	if err != nil {
		return "error"
	}
	var b strings.Builder
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return strconv.Quote(*p)
	}
	fmt.Fprintf(&b, "next=%s ", s(o.NextShardIterator))
	if o.MillisBehindLatest != nil {
		fmt.Fprintf(&b, "behind=%d ", *o.MillisBehindLatest)
	}
	fmt.Fprintf(&b, "children=%d\n", len(o.ChildShards))
	for _, r := range o.Records {
		fmt.Fprintf(&b, "%q %s %s %q", r.Data, s(r.PartitionKey), s(r.SequenceNumber), r.EncryptionType)
		if r.ApproximateArrivalTimestamp != nil {
			fmt.Fprintf(&b, " %d", r.ApproximateArrivalTimestamp.UnixNano())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// same decodes body with the SDK and with Install, twice (the second
// time with buffers sized from the first, and decoded into the first's
// buffers, released and poisoned), and reports a difference; fast says
// which decoder took it.
func same(t *testing.T, raw []byte) (fast bool) {
	t.Helper()
	h := &body{b: raw}
	sdk, mine, p := clients(h)
	p.Reuse, p.Poison = true, true
	ctx := context.Background()
	in := &kinesis.GetRecordsInput{ShardIterator: aws.String("it")}
	want, werr := sdk.GetRecords(ctx, in)
	for range 2 {
		got, gerr := mine.GetRecords(ctx, in)
		if w, g := describe(want, werr), describe(got, gerr); w != g {
			t.Fatalf("body %q\nSDK:  %s (%v)\nmine: %s (%v)", raw, w, werr, g, gerr)
		}
		if got != nil {
			p.Release(got.Records)
		}
	}
	if n := p.Fast.Load(); n == 1 {
		t.Fatalf("body %q: decoded here once of twice", raw)
	}
	return p.Fast.Load() == 2
}

type rec struct {
	Data                        []byte
	PartitionKey                string
	SequenceNumber              string
	ApproximateArrivalTimestamp json.Number `json:",omitempty"`
	EncryptionType              string      `json:",omitempty"`
}

func response(recs []rec, next string, behind int64) []byte {
	b, _ := json.Marshal(struct {
		Records            []rec
		NextShardIterator  string
		MillisBehindLatest int64
	}{recs, next, behind})
	return b
}

func TestSameAsTheSDK(t *testing.T) {
	recs := []rec{
		{Data: []byte(`{"device_id":"keg-1","ts":1,"metrics":{"t":4}}`), PartitionKey: "keg-1", SequenceNumber: "49590338271490256608559692538361571095921575989136588898", ApproximateArrivalTimestamp: "1764266400.123"},
		{Data: []byte{0, 1, 2, 255}, PartitionKey: "", SequenceNumber: "2", ApproximateArrivalTimestamp: "1.7642664001239999e9", EncryptionType: "KMS"},
		{Data: nil, PartitionKey: "é/ü", SequenceNumber: "3", ApproximateArrivalTimestamp: "-1.5"},
		// As Kinesis writes them (Java's Double.toString).
		{Data: []byte("x"), PartitionKey: "k", SequenceNumber: "4", ApproximateArrivalTimestamp: "1.764266400123E9"},
		{Data: []byte("y"), PartitionKey: "k", SequenceNumber: "5", ApproximateArrivalTimestamp: "1.7642664E9"},
	}
	for _, c := range []struct {
		name string
		body []byte
		fast bool
	}{
		{"records", response(recs, "AAAA", 42), true},
		{"empty", []byte(`{"Records":[],"NextShardIterator":"x","MillisBehindLatest":0}`), true},
		{"whitespace", []byte(" {\n \"Records\" : [ ] , \"MillisBehindLatest\" : 7 }\n"), true},
		{"child shards", []byte(`{"Records":[],"MillisBehindLatest":0,"ChildShards":[{"ShardId":"shardId-1","ParentShards":["shardId-0"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}}]}`), false},
		{"escaped", []byte(`{"Records":[{"Data":"AA==","PartitionKey":"a\"b","SequenceNumber":"1","ApproximateArrivalTimestamp":1}],"MillisBehindLatest":0}`), false},
		{"unknown field", []byte(`{"Records":[],"MillisBehindLatest":0,"Later":1}`), false},
		{"bad base64", []byte(`{"Records":[{"Data":"!!","PartitionKey":"a","SequenceNumber":"1"}]}`), false},
		{"leading plus", []byte(`{"Records":[],"MillisBehindLatest":+1}`), false},
		// Keys compared whole in the order the record before had them:
		// a record in another order, spaces, a key twice, one unknown.
		{"key order", []byte(`{"Records":[{"Data":"AA==","PartitionKey":"a","SequenceNumber":"1"},{"SequenceNumber":"2","Data":"AQ==","PartitionKey":"b"},` +
			`{"SequenceNumber":"3","Data":"Ag==","PartitionKey":"c"},{"Data":"Aw==","PartitionKey":"d","SequenceNumber":"4"}]}`), true},
		{"key spaces", []byte(`{"Records":[{"Data":"AA==","PartitionKey":"a"},{ "Data" :"AQ==", "PartitionKey" : "b"},{"Data":"Ag==","PartitionKey":"c"}]}`), true},
		{"key twice", []byte(`{"Records":[{"Data":"AA==","PartitionKey":"a","PartitionKey":"b"}]}`), false},
		{"key prefix", []byte(`{"Records":[{"Data":"AA==","PartitionKey":"a"},{"Data":"AQ==","PartitionKeys":"b"}]}`), false},
		{"unknown key", []byte(`{"Records":[{"Data":"AA==","PartitionKey":"a"},{"Data":"AQ==","Later":1}]}`), false},
		{"huge time", []byte(`{"Records":[{"Data":"AA==","PartitionKey":"a","SequenceNumber":"1","ApproximateArrivalTimestamp":1e300}]}`), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if fast := same(t, c.body); fast != c.fast {
				t.Errorf("decoded here: %v, want %v", fast, c.fast)
			}
		})
	}
}

// TestErrorsAreTheSDKs: throttling and an expired iterator reach the
// caller as the SDK's typed errors.
func TestErrorsAreTheSDKs(t *testing.T) {
	h := &body{status: 400, b: []byte(`{"__type":"ExpiredIteratorException","message":"Iterator expired"}`)}
	_, mine, p := clients(h)
	_, err := mine.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String("it")})
	if err == nil || !strings.Contains(fmt.Sprintf("%T %v", err, err), "ExpiredIterator") || p.Fast.Load() != 0 {
		t.Fatalf("got %T %v", err, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(response([]rec{{Data: []byte("x"), PartitionKey: "k", SequenceNumber: "1", ApproximateArrivalTimestamp: "1764266400.123"}}, "n", 5))
	f.Add([]byte(`{"Records":[{"Data":"AA==","PartitionKey":"a","SequenceNumber":"1","ApproximateArrivalTimestamp":0.0005}],"MillisBehindLatest":0}`))
	f.Add([]byte(`{"Records":null,"NextShardIterator":null}`))
	f.Add([]byte(`{"Records":[{"PartitionKey":"a","PartitionKey":"b"}]}`))
	f.Add([]byte(`{"Records":[{"Data":"AA==","Data":"AQ==","SequenceNumber":"1"}]}`))
	f.Add([]byte(`{"MillisBehindLatest":-0,"Records":[{"ApproximateArrivalTimestamp":-1E-7}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		same(t, raw)
	})
}

// FuzzRecords builds answers from records, as Kinesis would encode them.
func FuzzRecords(f *testing.F) {
	f.Add([]byte("payload"), "pk", "49590338271490256608559692538361571095921575989136588898", 1764266400.123, int64(0))
	f.Fuzz(func(t *testing.T, data []byte, pk, seq string, at float64, behind int64) {
		ts := json.Number(strconv.FormatFloat(at, 'g', -1, 64))
		body := response([]rec{{Data: data, PartitionKey: pk, SequenceNumber: seq, ApproximateArrivalTimestamp: ts}, {Data: data, PartitionKey: seq, SequenceNumber: pk}}, pk, behind)
		same(t, body)
		_ = base64.StdEncoding
	})
}

// kpl is a record as the Kinesis Producer Library aggregates records:
// the magic number, the protobuf, its MD5.
func kpl(t *testing.T, key string, payloads ...string) []byte {
	agg := &kplrecords.AggregatedRecord{PartitionKeyTable: []string{key}}
	for _, p := range payloads {
		agg.Records = append(agg.Records, &kplrecords.Record{PartitionKeyIndex: proto.Uint64(0), Data: []byte(p)})
	}
	b, err := proto.Marshal(protoadapt.MessageV2Of(agg)) // generated for the old API
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(b)
	return append(append(append([]byte{}, kplMagic...), b...), sum[:]...)
}

// TestHiddenPayloadsPassTheDeaggregator: with HidePayloads the payloads
// reach the record processor through the KCL's deaggregator as Payload,
// unformatted (it skips records shorter than the KPL's magic number),
// and KPL-aggregated records are still unpacked.
func TestHiddenPayloadsPassTheDeaggregator(t *testing.T) {
	recs := []rec{
		{Data: []byte(`{"device_id":"keg-1","ts":1,"metrics":{"t":4}}`), PartitionKey: "keg-1", SequenceNumber: "1"},
		{Data: nil, PartitionKey: "keg-2", SequenceNumber: "2"},
		{Data: []byte("ab"), PartitionKey: "keg-3", SequenceNumber: "3"},
		{Data: kpl(t, "keg-4", `{"a":1}`, `{"b":2}`), PartitionKey: "keg-4", SequenceNumber: "4"},
		{Data: kplMagic, PartitionKey: "keg-5", SequenceNumber: "5"}, // the magic alone: not an aggregate
	}
	want := []string{`{"device_id":"keg-1","ts":1,"metrics":{"t":4}}`, "", "ab", `{"a":1}`, `{"b":2}`, string(kplMagic)}
	for _, hide := range []bool{false, true} {
		_, fast, p := clients(&body{b: response(recs, "next", 0)})
		p.HidePayloads = hide
		out, err := fast.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String("it")})
		if err != nil || p.Fast.Load() != 1 {
			t.Fatalf("hide %v: %v (fast answers %d)", hide, err, p.Fast.Load())
		}
		hidden := 0
		for _, r := range out.Records {
			if len(r.Data) == 0 && cap(r.Data) > 0 {
				hidden++
			}
		}
		if want := map[bool]int{false: 0, true: 2}[hide]; hidden != want {
			t.Errorf("hide %v: %d payloads hidden, want %d (the first and the third)", hide, hidden, want)
		}
		dars, err := deaggregator.DeaggregateRecords(out.Records)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i := range dars {
			got = append(got, string(Payload(&dars[i])))
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("hide %v: the record processor reads %q, want %q", hide, got, want)
		}
	}
}

// TestShapeGuess: buffers sized from an earlier answer hold the same
// records whatever the guess (one too small takes a second chunk, or
// copies the records), and allocate less than buffers sized for a body
// that is all payload.
func TestShapeGuess(t *testing.T) {
	var recs []rec
	for i := range 2000 {
		recs = append(recs, rec{Data: bytes.Repeat([]byte{byte(i)}, i%300), PartitionKey: "dev-" + strconv.Itoa(i),
			SequenceNumber: "4959033827149025660855969253836157109592157598913658" + strconv.Itoa(1000+i), ApproximateArrivalTimestamp: "1.764266400123E9"})
	}
	raw := response(recs, "AAAA", 0)
	var want kinesis.GetRecordsOutput
	sh, err := decode(raw, &want, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sh.records != 2000 || sh.body != len(raw) || sh.payload < len(raw)/3 {
		t.Fatalf("shape %+v of a %d-byte answer", sh, len(raw))
	}
	allocated := func(guess *shape) uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		var got kinesis.GetRecordsOutput
		if _, err := decode(raw, &got, guess, nil); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&ms)
		if describe(&got, nil) != describe(&want, nil) {
			t.Fatalf("guess %+v: records differ", guess)
		}
		return ms.TotalAlloc - before
	}
	all, guessed := allocated(nil), allocated(&sh)
	allocated(&shape{body: sh.body, records: sh.records / 3, payload: sh.payload / 3}) // short
	allocated(&shape{body: 1 << 30, records: 1, payload: 1})
	allocated(&shape{body: 1, records: 1 << 20, payload: 1 << 30}) // long: bounded by the body
	if saved := float64(all-guessed) / float64(len(raw)); saved < 0.1 {
		t.Errorf("guessing the shape saved %.2f bytes a body byte (%d -> %d bytes)", saved, all, guessed)
	}
}

// TestReleaseReuses: an answer's buffers, released, hold the next
// answer's records (poisoned first, with Poison: what the first
// answer's records read after Release), and the next answer allocates a
// fraction of the first's, an empty answer between them notwithstanding;
// without Reuse, or for records from elsewhere, Release does nothing.
func TestReleaseReuses(t *testing.T) {
	var recs []rec
	for i := range 2000 {
		recs = append(recs, rec{Data: []byte(`{"device_id":"keg-` + strconv.Itoa(i) + `","ts":1,"metrics":{"t":4}}`), PartitionKey: "keg-" + strconv.Itoa(i),
			SequenceNumber: "4959033827149025660855969253836157109592157598913658" + strconv.Itoa(1000+i), ApproximateArrivalTimestamp: "1.764266400123E9"})
	}
	raw := response(recs, "AAAA", 0)
	for _, reuse := range []bool{false, true} {
		h := &body{b: raw}
		_, fast, p := clients(h)
		p.Reuse, p.Poison, p.HidePayloads = reuse, true, true
		ctx := context.Background()
		in := &kinesis.GetRecordsInput{ShardIterator: aws.String("it")}
		get := func() (*kinesis.GetRecordsOutput, uint64) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			out, err := fast.GetRecords(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&ms)
			return out, ms.TotalAlloc - before
		}
		get() // sizes the next answers' buffers, as in service
		first, _ := get()
		want := describe(first, nil)
		seq := *first.Records[7].SequenceNumber
		p.Release(append([]types.Record(nil), first.Records[1:]...)) // not the answer's first record: not found
		p.Release(nil)
		if describe(first, nil) != want {
			t.Fatalf("reuse %v: records changed by a Release of records that do not start an answer", reuse)
		}
		payload := Payload(&first.Records[0])
		p.Release(first.Records)
		if poisoned := payload[0] == 0xA5; poisoned != reuse {
			t.Errorf("reuse %v: the first payload after Release: %q", reuse, payload)
		}
		if seq != "4959033827149025660855969253836157109592157598913658"+strconv.Itoa(1007) {
			t.Errorf("reuse %v: a sequence number changed by Release: %q", reuse, seq)
		}
		// An empty answer in between (an idle shard's poll) leaves the
		// buffers to the next answer with records.
		h.b = []byte(`{"Records":[],"NextShardIterator":"x","MillisBehindLatest":0}`)
		if empty, _ := get(); len(empty.Records) != 0 || cap(empty.Records) != 0 {
			t.Fatalf("reuse %v: an empty answer of %d records, capacity %d", reuse, len(empty.Records), cap(empty.Records))
		}
		h.b = raw
		second, allocated := get()
		if describe(second, nil) != want {
			t.Fatalf("reuse %v: the second answer differs", reuse)
		}
		same := unsafe.SliceData(Payload(&second.Records[0])) == unsafe.SliceData(payload)
		if same != reuse {
			t.Errorf("reuse %v: the second answer in the first's buffers: %v", reuse, same)
		}
		if reuse && allocated > uint64(len(raw))/2 {
			t.Errorf("reuse: the second answer allocated %d bytes, a %d-byte body", allocated, len(raw))
		}
		if want := map[bool]uint64{false: 0, true: 1}[reuse]; p.Reused.Load() != want {
			t.Errorf("reuse %v: %d answers counted as reusing buffers, want %d", reuse, p.Reused.Load(), want)
		}
	}
}

// TestLongPayloads: payloads of every length to 3,000 bytes, random
// bytes, through the vector steps, the overlapping last step and the
// table decoder's tail, in answers decoded twice (the second with
// buffers sized from the first), as the SDK decodes them.
func TestLongPayloads(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 4 {
		var recs []rec
		for i := range 750 {
			n := round*750 + i // every length once over the rounds
			data := make([]byte, n)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			recs = append(recs, rec{Data: data, PartitionKey: "dev-" + strconv.Itoa(i),
				SequenceNumber: "4959033827149025660855969253836157109592157598913658" + strconv.Itoa(1000+n), ApproximateArrivalTimestamp: "1.764266400123E9"})
		}
		if !same(t, response(recs, "next", 0)) {
			t.Fatalf("round %d: not decoded here", round)
		}
	}
}

// TestBodiesSurviveGC: the buffers answers are read into outlive GCs
// (the service runs several an answer), up to keptBodies of them; the
// rest go to the pool, which a GC may empty.
func TestBodiesSurviveGC(t *testing.T) {
	var o kinesis.Options
	Install(&o)
	p := o.Protocol.(*Protocol)
	var kept []*bytes.Buffer
	for range keptBodies + 2 {
		kept = append(kept, p.body())
	}
	for _, b := range kept {
		b.Grow(1 << 20)
		p.put(b)
	}
	runtime.GC()
	runtime.GC()
	for i := range keptBodies {
		b := p.body()
		if b != kept[i] || b.Cap() < 1<<20 {
			t.Fatalf("body %d after two GCs: a new buffer (capacity %d)", i, b.Cap())
		}
	}
}
