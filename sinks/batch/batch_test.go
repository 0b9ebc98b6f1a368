package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/versitygw"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// memStore is a put-if-absent map that can fail the n-th Put.
type memStore struct {
	objects map[string][]byte
	puts    int
	failAt  int
}

func (m *memStore) Put(_ context.Context, key string, data []byte) (bool, error) {
	m.puts++
	if m.puts == m.failAt {
		return false, errors.New("injected failure")
	}
	if _, ok := m.objects[key]; ok {
		return false, nil
	}
	m.objects[key] = data
	return true, nil
}

// run feeds a fixed stream through a processor into a Writer on store,
// flushing when Due and at the end, and returns the acknowledgements.
func run(t *testing.T, store Store, retry bool) []string {
	t.Helper()
	return runWith(t, store, retry, nil)
}

// runWith is run with after called after each Flush.
func runWith(t *testing.T, store Store, retry bool, after func(*Writer)) []string {
	t.Helper()
	// Snappy: under -race, sync.Pool drops items and arrow-go's pooled zstd
	// encoders get rebuilt per page, which makes this test 50x slower; the
	// codec is not what it tests.
	w, err := New(store, Options{Prefix: "tapline/test", Shard: "shardId-000000000001", MaxRows: 700, FlushEvery: time.Minute,
		Parquet: parquet.Options{Compression: parquet.Snappy}})
	if err != nil {
		t.Fatal(err)
	}
	one, _ := windows.ParseSpec("1m")
	cfg, _ := rules.Parse("r.yml", []byte("rules:\n  - {name: hot, kind: threshold, metric: t, window: 1m, above: 6}\n"))
	p, err := pipeline.NewProcessor(pipeline.Options{Shard: "shardId-000000000001", Windows: windows.Options{Specs: []windows.Spec{one}},
		Rules: cfg, DeadLetters: w, OnRecord: w.Record, OnWindow: w.Window, OnAlert: w.Alert})
	if err != nil {
		t.Fatal(err)
	}
	var acks []string
	flush := func() {
		for {
			last, err := w.Flush(context.Background(), p.Watermark())
			if after != nil {
				after(w)
			}
			if err == nil {
				if last != "" {
					acks = append(acks, last)
				}
				return
			}
			if !retry {
				t.Fatal(err)
			}
		}
	}
	base := time.Date(2026, 11, 27, 23, 40, 0, 0, time.UTC).UnixMilli()
	for i := 0; i < 3000; i++ {
		data := fmt.Appendf(nil, `{"device_id":"d%d","ts":%d,"metrics":{"t":%d}}`, i%7, base+int64(i)*1000, i%9)
		if i%500 == 499 {
			data = []byte(`{"device_id":"../x","ts":1,"metrics":{"t":1}}`) // dead-lettered
		}
		seq := strconv.Itoa(1_000_000 + i)
		if err := p.Process(data, seq, 0); err != nil {
			t.Fatal(err)
		}
		if w.Due(p.Watermark()) {
			flush()
		}
	}
	p.Flush()
	flush()
	return acks
}

// TestReusedEncodersWriteTheSameObjects: encoders kept from earlier
// batches (and other event hours) write byte for byte what fresh ones
// write, and they are kept: the stream's batches reuse them.
func TestReusedEncodersWriteTheSameObjects(t *testing.T) {
	reused, fresh := &memStore{objects: map[string][]byte{}}, &memStore{objects: map[string][]byte{}}
	kept := 0
	runWith(t, reused, false, func(w *Writer) { kept = max(kept, len(w.raw.spare)+len(w.windows.spare)) })
	runWith(t, fresh, false, func(w *Writer) {
		w.raw.spare, w.windows.spare, w.alerts.spare, w.dead.spare = nil, nil, nil, nil
	})
	if kept == 0 {
		t.Fatal("no encoder was kept between batches")
	}
	if len(reused.objects) != len(fresh.objects) || len(fresh.objects) < 10 {
		t.Fatalf("%d objects reusing encoders, %d with fresh ones", len(reused.objects), len(fresh.objects))
	}
	for k, b := range fresh.objects {
		if !bytes.Equal(reused.objects[k], b) {
			t.Errorf("%s differs with reused encoders", k)
		}
	}
}

// TestFailedWriteIsRetriedWithSameObjects: a Put fails mid-batch; the
// batch is not acknowledged, and the retry writes exactly the objects a
// run without failures writes.
func TestFailedWriteIsRetriedWithSameObjects(t *testing.T) {
	clean := &memStore{objects: map[string][]byte{}}
	acks := run(t, clean, false)
	if len(clean.objects) < 6 || len(acks) < 3 || acks[len(acks)-1] != "1002999" {
		t.Fatalf("%d objects, acks %v", len(clean.objects), acks)
	}
	var deadLines int
	for k, v := range clean.objects {
		if strings.HasPrefix(k, "tapline/test/deadletter/dt=") && strings.HasSuffix(k, ".jsonl") {
			deadLines += strings.Count(string(v), "\n")
			if !strings.Contains(string(v), `"reason":"invalid_device_id"`) {
				t.Fatalf("%s: %s", k, v)
			}
		}
	}
	if deadLines != 6 {
		t.Fatalf("%d dead letters stored, want 6", deadLines)
	}
	for failAt := 1; failAt < 10; failAt += 3 {
		flaky := &memStore{objects: map[string][]byte{}, failAt: failAt}
		if got := run(t, flaky, true); !slices.Equal(got, acks) {
			t.Fatalf("failAt %d: acks %v, want %v", failAt, got, acks)
		}
		if !maps.EqualFunc(flaky.objects, clean.objects, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Fatalf("failAt %d: objects differ from a clean run", failAt)
		}
	}
}

// TestReplayWritesNothingNew replays the same records into the same S3
// bucket (versitygw): the second run finds every object, writes none, and
// the bucket holds the same objects with the same bytes.
func TestReplayWritesNothingNew(t *testing.T) {
	root := t.TempDir()
	srv, err := versitygw.Start(root)
	server.Require(t, err)
	defer srv.Stop()
	cfg := versitygw.AWSConfig(srv.Endpoint)
	store, err := s3sink.New(cfg, s3sink.Options{Bucket: "tapline-replay"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("tapline-replay")}); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]string {
		out := map[string]string{}
		list, err := store.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("tapline-replay")})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Contents {
			out[*o.Key] = *o.ETag
		}
		return out
	}
	first := run(t, countingStore{store, new(int)}, false)
	before := snapshot()
	counter := countingStore{store, new(int)}
	second := run(t, counter, false)
	after := snapshot()
	if !slices.Equal(first, second) || len(before) < 6 || !maps.Equal(before, after) {
		t.Fatalf("replay changed the bucket: %d objects before, %d after; acks %v vs %v", len(before), len(after), first, second)
	}
	if *counter.wrote != 0 {
		t.Fatalf("replay wrote %d objects", *counter.wrote)
	}
}

type countingStore struct {
	*s3sink.Store
	wrote *int
}

func (c countingStore) Put(ctx context.Context, key string, data []byte) (bool, error) {
	w, err := c.Store.Put(ctx, key, data)
	if w {
		*c.wrote++
	}
	return w, err
}

// TestTriggers: each of rows, bytes and event time ends a batch.
func TestTriggers(t *testing.T) {
	store := &memStore{objects: map[string][]byte{}}
	rec := &schemas.Record{DeviceID: []byte("d1"), Time: 60_000, Seq: -1, Metrics: []schemas.Metric{{Name: []byte("t"), Value: 1}}}
	for _, tc := range []struct {
		name string
		o    Options
		n    int   // records to buffer
		wm   int64 // watermark after them
		due  bool
	}{
		{"rows", Options{MaxRows: 3}, 3, 61_000, true},
		{"below rows", Options{MaxRows: 3}, 2, 61_000, false},
		{"bytes", Options{MaxBytes: 100}, 2, 61_000, true},
		{"event time", Options{FlushEvery: time.Minute}, 1, 120_000, true},
		{"before the minute", Options{FlushEvery: time.Minute}, 1, 119_999, false},
	} {
		tc.o.Shard = "s"
		w, err := New(store, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		w.Due(60_500) // the first watermark fixes the flush boundary: 120,000
		for i := range tc.n {
			w.Record(rec, strconv.Itoa(i), 0)
		}
		if got := w.Due(tc.wm); got != tc.due {
			t.Errorf("%s: Due = %v, want %v", tc.name, got, tc.due)
		}
	}
}

// Windows closed with no record in their batch (an idle advance, shard
// end) are still written, named after the previous batch and the
// watermark, so a replay names them the same.
func TestRowsWithoutRecords(t *testing.T) {
	store := &memStore{objects: map[string][]byte{}}
	w, err := New(store, Options{Shard: "shardId-000000000001", Parquet: parquet.Options{Compression: parquet.Snappy}})
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()
	w.Resume("49000000000000000000000000000000000000000000000000000042", ms+60_000)
	spec, _ := windows.ParseSpec("1m")
	w.Window(&windows.Window{Spec: &spec, Start: ms, End: ms + 60_000, DeviceID: "keg-1", Metric: "t", Agg: windows.Agg{Count: 1, Sum: 1}})
	if !w.Due(ms + 120_000) {
		t.Fatal("a batch holding a window is not due past its flush time")
	}
	last, err := w.Flush(context.Background(), ms+120_000)
	if err != nil || last != "" {
		t.Fatalf("Flush = %q, %v; want no acknowledgement, no error", last, err)
	}
	want := fmt.Sprintf("windows/dt=2026-11-27/hour=10/shardId-000000000001-49000000000000000000000000000000000000000000000000000042-w%d.parquet", ms+120_000)
	if _, ok := store.objects[want]; !ok || len(store.objects) != 1 {
		t.Fatalf("objects %v, want only %s", slices.Collect(maps.Keys(store.objects)), want)
	}
	if after, _ := w.State(); after != "49000000000000000000000000000000000000000000000000000042" {
		t.Fatalf("State after = %q; a batch without records must not move it", after)
	}
}

// TestZstdLevel: a batch's files are compressed at zstd_level (default
// 1, zstd's fastest), which changes their bytes and not their rows, and a
// level outside zstd's is refused by its key.
func TestZstdLevel(t *testing.T) {
	write := func(level int) []byte {
		t.Helper()
		store := &memStore{objects: map[string][]byte{}}
		w, err := New(store, Options{Prefix: "tapline/test", Shard: "shardId-000000000001", ZstdLevel: level})
		if err != nil {
			t.Fatal(err)
		}
		base := time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC).UnixMilli() // one hour: one raw file
		dec := schemas.NewDecoder(schemas.Options{})
		for i := range 5000 {
			rec, err := dec.Decode(fmt.Appendf(nil, `{"device_id":"d%d","ts":%d,"metrics":{"t":%d.%d}}`, i%7, base+int64(i)*500, i%9, i*7919%1000), 0)
			if err != nil {
				t.Fatal(err)
			}
			w.Record(rec, strconv.Itoa(1_000_000+i), 0)
		}
		if _, err := w.Flush(context.Background(), base+3_600_000); err != nil {
			t.Fatal(err)
		}
		for k, b := range store.objects {
			if strings.Contains(k, "/raw/") {
				f, err := file.NewParquetReader(bytes.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				if f.NumRows() != 5000 {
					t.Fatalf("level %d: %d rows", level, f.NumRows())
				}
				return b
			}
		}
		t.Fatal("no raw file")
		return nil
	}
	byDefault, fastest, zstds := write(0), write(1), write(3)
	if !bytes.Equal(byDefault, fastest) {
		t.Error("the default is not level 1")
	}
	if bytes.Equal(fastest, zstds) {
		t.Error("levels 1 and 3 wrote the same bytes")
	}
	if _, err := New(&memStore{}, Options{Prefix: "tapline/test", Shard: "shardId-000000000001", ZstdLevel: 23}); err == nil || !strings.Contains(err.Error(), "batch.zstd_level") {
		t.Errorf("level 23: %v", err)
	}
}
