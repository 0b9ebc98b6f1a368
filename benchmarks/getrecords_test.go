package benchmarks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/tapline/tapline/deploy/local/memkinesis"
	"github.com/tapline/tapline/pipeline/getrecords"
)

// getRecordsResponse is a GetRecords answer of n records of ds, as
// Kinesis sends it: JSON with base64 payloads and arrival times as Java's
// Double.toString writes them (1.764266400123E9, the API reference's
// example form; kinesalite writes 1764266400.123).
func getRecordsResponse(tb testing.TB, ds *Dataset, n int) []byte {
	type rec struct {
		Data                        string
		PartitionKey                string
		SequenceNumber              string
		ApproximateArrivalTimestamp json.Number
	}
	resp := struct {
		Records            []rec
		NextShardIterator  string
		MillisBehindLatest int64
	}{NextShardIterator: "AAAAAAAAAAF", MillisBehindLatest: 0}
	for i := 0; i < n; i++ {
		resp.Records = append(resp.Records, rec{
			Data:                        base64.StdEncoding.EncodeToString(ds.Records[i]),
			PartitionKey:                "dev-" + strconv.Itoa(i%10_000),
			SequenceNumber:              "4959033827149025660855969253836157109592157598913658" + strconv.Itoa(1000+i),
			ApproximateArrivalTimestamp: memkinesis.KinesisTime(1764266400_123 + int64(i)),
		})
	}
	b, err := json.Marshal(resp)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// inMemory answers every request with body, without a socket.
type inMemory []byte

func (b inMemory) Do(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b))}, nil
}

// BenchmarkGetRecordsDecode is the cost per record of a 10,000-record
// GetRecords response, HTTP on loopback included, with the AWS SDK's own
// decoder (sdk: the ceiling of any KCL consumer in Go before its own
// processing starts) and with tapline's (pipeline/getrecords), in the
// same run. tapline's answers are released as the service's shards
// release them (getrecords.Protocol.Release), so each is decoded into the
// buffers of the one before. allocs/record is the allocations of a
// response over its records.
func BenchmarkGetRecordsDecode(b *testing.B) {
	ds := Generate(10_000, 10_000, time.Second, 8)
	body := getRecordsResponse(b, ds, 10_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Write(body)
	}))
	defer srv.Close()
	var proto *getrecords.Protocol
	tapline := []func(*kinesis.Options){func(o *kinesis.Options) {
		getrecords.Install(o)
		proto = o.Protocol.(*getrecords.Protocol)
		proto.Reuse = true
	}}
	for _, c := range []struct {
		name string
		opts []func(*kinesis.Options)
		http aws.HTTPClient // nil: loopback HTTP
	}{
		{"sdk", nil, nil}, {"tapline", tapline, nil},
		// The decoders alone: the body handed over in memory, no socket.
		{"sdk/in-memory", nil, inMemory(body)}, {"tapline/in-memory", tapline, inMemory(body)},
	} {
		b.Run(c.name, func(b *testing.B) {
			cfg := aws.Config{
				Region:       "us-east-1",
				Credentials:  credentials.NewStaticCredentialsProvider("x", "y", ""),
				BaseEndpoint: aws.String(srv.URL),
			}
			if c.http != nil {
				cfg.HTTPClient = c.http
			}
			proto = nil
			client := kinesis.NewFromConfig(cfg, c.opts...)
			ctx := context.Background()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mallocs := ms.Mallocs
			for b.Loop() {
				out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAAAAAAAE")})
				if err != nil {
					b.Fatal(err)
				}
				if len(out.Records) != 10_000 {
					b.Fatalf("%d records", len(out.Records))
				}
				if proto != nil {
					proto.Release(out.Records)
				}
			}
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(b.N*10_000), "allocs/record")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10_000), "ns/record")
			b.ReportMetric(float64(b.N*10_000)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
