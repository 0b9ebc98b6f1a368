package backtest

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/versitygw"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// s3Store starts versitygw (a real S3 server on loopback) with a bucket.
func s3Store(t *testing.T, bucket string) *s3sink.Store {
	t.Helper()
	srv, err := versitygw.Start(t.TempDir())
	server.Require(t, err) // a skip outside CI without `make local-stack`; in CI a failure
	t.Cleanup(func() { srv.Stop() })
	store, err := s3sink.New(versitygw.AWSConfig(srv.Endpoint), s3sink.Options{Bucket: bucket, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return store
}

// TestS3RawReplaysTheSameAlerts: the raw dataset as the service lays it
// out in S3 (one object per shard batch under raw/dt=/hour=), read back
// from versitygw for one week of event time, replays to the same alerts
// as the JSON lines the devices sent in that week; objects outside the
// range are not read.
func TestS3RawReplaysTheSameAlerts(t *testing.T) {
	all, _ := nab(t)
	var readings []Reading
	for _, r := range all {
		if r.Device == "ec2-cpu-utilization-24ae8d" || r.Device == "ec2-cpu-utilization-fe7f93" {
			readings = append(readings, r)
		}
	}
	slices.SortStableFunc(readings, func(a, b Reading) int { return cmp.Compare(a.At, b.At) })
	store := s3Store(t, "lake")
	ctx := context.Background()
	dec := schemas.NewDecoder(schemas.Options{})
	hourOf := func(at int64) int64 { return at / 3_600_000 * 3_600_000 }
	var objects int
	for i := 0; i < len(readings); {
		// A batch: the records of one event hour, as the service's writer
		// cuts them at partition boundaries.
		j := i
		for j < len(readings) && hourOf(readings[j].At) == hourOf(readings[i].At) {
			j++
		}
		raw, err := parquet.NewRaw(parquet.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for k := i; k < j; k++ {
			rec, err := dec.Decode(readings[k].Data, 0)
			if err != nil {
				t.Fatal(err)
			}
			raw.Append(rec, 0, "shardId-000000000000", strconv.Itoa(k))
		}
		data, err := raw.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		key, err := layout.Key("tapline", layout.Raw, readings[i].At, "shardId-000000000000", strconv.Itoa(i), strconv.Itoa(j-1), "parquet")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
		objects++
		i = j
	}

	from := time.Date(2014, 2, 17, 0, 0, 0, 0, time.UTC).UnixMilli()
	r := Range{From: from, To: from + 7*24*3_600_000}
	var progress []int
	fromS3, err := ReadS3(ctx, store, "tapline", r, func(done, total int) { progress = append(progress, done, total) })
	if err != nil {
		t.Fatal(err)
	}
	var want []Reading
	var jsonl bytes.Buffer
	for _, rd := range readings {
		if r.Contains(rd.At) {
			want = append(want, rd)
			jsonl.Write(rd.Data)
			jsonl.WriteByte('\n')
		}
	}
	fromJSON := ParseJSONLines(jsonl.Bytes())
	if len(fromS3) != len(want) || len(fromJSON) != len(want) || len(want) < 4000 {
		t.Fatalf("%d readings from S3, %d from JSON lines, want %d", len(fromS3), len(fromJSON), len(want))
	}
	if n := len(progress); n == 0 || progress[n-2] != progress[n-1] || progress[n-1] > objects/2 {
		t.Fatalf("progress %v: want the range's objects (%d in the bucket)", progress[max(0, len(progress)-2):], objects)
	}
	opts := func() pipeline.Options {
		specs, _ := rules.Default().Specs()
		return pipeline.Options{Windows: windows.Options{Specs: specs}, Rules: rules.Default()}
	}
	a, err := Run(fromS3, opts())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(fromJSON, opts())
	if err != nil {
		t.Fatal(err)
	}
	var outA, outB bytes.Buffer
	WriteJSON(&outA, a, nil)
	WriteJSON(&outB, b, nil)
	if len(a.Alerts) < 2 || !bytes.Equal(outA.Bytes(), outB.Bytes()) {
		t.Fatalf("S3 raw: %d alerts, JSON lines: %d\n%s\n---\n%s", len(a.Alerts), len(b.Alerts), outA.String(), outB.String())
	}
}

func TestPartitionHourAndURL(t *testing.T) {
	at, ok := partitionHour("p/raw/dt=2026-11-27/hour=18/shardId-1-2.parquet")
	if !ok || at != time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC).UnixMilli() {
		t.Fatalf("%d %v", at, ok)
	}
	for _, bad := range []string{"p/raw/x.parquet", "p/raw/dt=2026-11-27/hour=xx/a.parquet", "p/raw/dt=2026-13-27/hour=01/a"} {
		if _, ok := partitionHour(bad); ok {
			t.Errorf("%s parsed", bad)
		}
	}
	if b, p, err := ParseS3URL("s3://lake/tapline/"); b != "lake" || p != "tapline" || err != nil {
		t.Fatalf("%q %q %v", b, p, err)
	}
	if _, _, err := ParseS3URL("https://lake"); err == nil {
		t.Fatal("not an s3 URL accepted")
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"2026-11-20":           time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
		"2026-11-20T06:30:00Z": time.Date(2026, 11, 20, 6, 30, 0, 0, time.UTC),
		"168h":                 now.Add(-168 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
	} {
		got, err := ParseTime(in, now)
		if w := want.UnixMilli(); want.IsZero() {
			w = 0
			if got != w || err != nil {
				t.Errorf("%q: %d %v", in, got, err)
			}
		} else if got != w || err != nil {
			t.Errorf("%q: %d %v, want %d", in, got, err, w)
		}
	}
	for _, bad := range []string{"yesterday", "-5h", "7days", "0d", "1.5d"} {
		if _, err := ParseTime(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
