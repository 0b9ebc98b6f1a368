package benchmarks

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/windows"
)

// jobZstdLevel is the zstd level tapline's side of the DuckDB job
// writes at: batch.zstd_level's default, what the service writes since
// session 14 (level 3 before). DuckDB's side is as the issue defines it:
// its COPY's default codec, Snappy.
const jobZstdLevel = 1

// The DuckDB baseline computes 1m tumbling count/sum/min/max per device and
// metric from the NDJSON file, single-threaded, and writes them as
// Parquet: read_json + UNPIVOT + GROUP BY + COPY TO. tapline does the same
// work for the comparison: decode, 1m windows, no rules, windows encoded
// as Parquet.
func duckSQL(ndjson, out string) string {
	return fmt.Sprintf(`COPY (
  WITH r AS (SELECT device_id, ts, metrics.* FROM read_json('%s', format = 'newline_delimited')),
       u AS (UNPIVOT r ON COLUMNS(* EXCLUDE (device_id, ts)) INTO NAME metric VALUE v)
  SELECT device_id, metric, epoch_ms(time_bucket(INTERVAL 1 minute, epoch_ms(ts))) AS window_start,
         count(*) AS n, sum(v) AS s, min(v) AS mn, max(v) AS mx
  FROM u GROUP BY ALL
) TO '%s' (FORMAT parquet)`, ndjson, out)
}

func writeNDJSON(tb testing.TB, ds *Dataset, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, r := range ds.Records {
		w.Write(r)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
}

type winKey struct {
	device, metric string
	start          int64
}

type winVal struct {
	n           int64
	s, min, max float64
}

// tumbling runs tapline's loop with 1m windows and no rules, handing each
// window to fn: the records in batches of 10,000, as the service gets
// them from GetRecords (ProcessBatch, which names each record to
// Prefetch a few records ahead). devices is the fleet-size hint
// (windows.Options.ExpectedDevices).
func tumbling(tb testing.TB, ds *Dataset, devices int, fn func(*windows.Window)) *pipeline.Processor {
	spec, _ := windows.ParseSpec("1m")
	p, err := pipeline.NewProcessor(pipeline.Options{Windows: windows.Options{Specs: []windows.Spec{spec}, AllowedLateness: lateness, ExpectedDevices: devices},
		DeadLetters: discard{}, OnWindow: fn})
	if err != nil {
		tb.Fatal(err)
	}
	batch := make([]pipeline.Input, 0, 10_000)
	for from := 0; from < len(ds.Records); from += cap(batch) {
		batch = batch[:0]
		for _, r := range ds.Records[from:min(from+cap(batch), len(ds.Records))] {
			batch = append(batch, pipeline.Input{Data: r})
		}
		if err := p.ProcessBatch(batch); err != nil {
			tb.Fatal(err)
		}
	}
	p.Flush()
	return p
}

// TestAgreesWithDuckDB: before any timing counts, tapline and DuckDB
// compute the same windows from the same file.
func TestAgreesWithDuckDB(t *testing.T) {
	server.Require(t, duckdb.Available())
	dir := t.TempDir()
	ds := Generate(100, 20_000, time.Second, 5)
	file := filepath.Join(dir, "ds.ndjson")
	writeNDJSON(t, ds, file)
	if _, err := duckdb.Query(duckSQL(file, filepath.Join(dir, "out.parquet"))); err != nil {
		t.Fatal(err)
	}
	res, err := duckdb.Query(fmt.Sprintf("SELECT device_id, metric, window_start, n, s, mn, mx FROM '%s'", filepath.Join(dir, "out.parquet")))
	if err != nil {
		t.Fatal(err)
	}
	got := map[winKey]winVal{}
	tumbling(t, ds, 100, func(w *windows.Window) {
		got[winKey{w.DeviceID, w.Metric, w.Start}] = winVal{w.Count, w.Sum, w.Min, w.Max}
	})
	if len(res.Rows) != len(got) || len(got) < 1000 {
		t.Fatalf("DuckDB %d windows, tapline %d", len(res.Rows), len(got))
	}
	f := func(v any) float64 {
		if s, ok := v.(string); ok {
			x, _ := strconv.ParseFloat(s, 64)
			return x
		}
		return v.(float64)
	}
	for _, r := range res.Rows {
		k := winKey{r[0].(string), r[1].(string), int64(f(r[2]))}
		w, ok := got[k]
		if !ok {
			t.Fatalf("window %+v only in DuckDB", k)
		}
		// Sums may differ in the last bits: the two add in different orders.
		if int64(f(r[3])) != w.n || f(r[5]) != w.min || f(r[6]) != w.max || math.Abs(f(r[4])-w.s) > 1e-9*math.Abs(w.s) {
			t.Fatalf("window %+v: DuckDB %v, tapline %+v", k, r[3:], w)
		}
	}
}

// BenchmarkVersusDuckDB times the same job, 1M records of 1k, 10k and
// 100k devices: DuckDB (one thread, timed inside DuckDB) and tapline (one
// goroutine).
func BenchmarkVersusDuckDB(b *testing.B) {
	for _, devices := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%dk", devices/1000), func(b *testing.B) {
			versusDuckDB(b, Generate(devices, 1_000_000, time.Second, 6), devices)
		})
	}
}

func versusDuckDB(b *testing.B, ds *Dataset, devices int) {
	b.Run("duckdb", func(b *testing.B) {
		server.Require(b, duckdb.Available())
		dir := b.TempDir()
		file := filepath.Join(dir, "ds.ndjson")
		writeNDJSON(b, ds, file)
		var ms float64
		for b.Loop() {
			res, err := duckdb.Query(duckSQL(file, filepath.Join(dir, "out.parquet")))
			if err != nil {
				b.Fatal(err)
			}
			ms += res.ElapsedMs
		}
		b.ReportMetric(float64(b.N*len(ds.Records))/(ms/1000), "records/s")
		b.ReportMetric(ms*1e6/float64(b.N*len(ds.Records)), "ns/record")
	})
	b.Run("tapline", func(b *testing.B) {
		var size int64
		for b.Loop() {
			enc, _ := parquet.NewWindows(parquet.Options{ZstdLevel: jobZstdLevel})
			tumbling(b, ds, devices, enc.Append)
			n, err := enc.WriteTo(io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			size = n
		}
		b.ReportMetric(float64(size)/1e6, "file-MB")
		b.ReportMetric(float64(b.N*len(ds.Records))/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ds.Records)), "ns/record")
	})
}
