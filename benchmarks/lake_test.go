package benchmarks

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/athena"
	"github.com/tapline/tapline/sinks/compact"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/localdir"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/windows"
)

// lakeDay writes a day of a fleet as the service lands it: one shard,
// one raw and one windows file per minute batch, rows in arrival order;
// every device reads every 10 s and has a 1m window of one metric.
func lakeDay(tb testing.TB, root string, devices int) (rawRows, windowRows int) {
	store, err := localdir.New(root)
	if err != nil {
		tb.Fatal(err)
	}
	spec, _ := windows.ParseSpec("1m")
	day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC).UnixMilli()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([][]byte, devices)
	for d := range ids {
		ids[d] = fmt.Appendf(nil, "dev-%05d", d)
	}
	seq := uint64(1e12)
	for m := 0; m < 24*60; m++ {
		start := day + int64(m)*60_000
		raw, _ := parquet.NewRaw(parquet.Options{})
		win, _ := parquet.NewWindows(parquet.Options{})
		first := seq
		for s := 0; s < 6; s++ {
			for _, d := range rng.Perm(devices) {
				v := 4 + rng.Float64()
				raw.Append(&schemas.Record{DeviceID: ids[d], Time: start + int64(s)*10_000 + int64(d%10_000), Seq: -1, Reading: -1,
					Metrics: []schemas.Metric{{Name: []byte("temp_c"), Value: v}}}, start+int64(s+1)*10_000, "shardId-000000000000", strconv.FormatUint(seq, 10))
				seq++
				rawRows++
			}
		}
		for _, d := range rng.Perm(devices) {
			v := 4 + rng.Float64()
			win.Append(&windows.Window{Spec: &spec, Start: start, End: start + 60_000, DeviceID: string(ids[d]), Metric: "temp_c",
				Agg: windows.Agg{Count: 6, Sum: 6 * v, Min: v - 0.5, Max: v + 0.5, Mean: v, First: v, Last: v}})
			windowRows++
		}
		for ds, enc := range map[string]interface{ Bytes() ([]byte, error) }{layout.Raw: raw, layout.Windows: win} {
			data, err := enc.Bytes()
			if err != nil {
				tb.Fatal(err)
			}
			key, _ := layout.Key("", ds, start, "shardId-000000000000", strconv.FormatUint(first, 10), strconv.FormatUint(seq-1, 10), "parquet")
			if _, err := store.Put(context.Background(), key, data); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return rawRows, windowRows
}

// scanned is what a reader that skips row groups by their device_id
// statistics must fetch for one device: the files it opens and the
// bytes of the row groups whose [min, max] holds the device.
func scanned(tb testing.TB, root, device string) (files int, bytes int64) {
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".parquet") || strings.Contains(p, "/manifests/") {
			return err
		}
		files++
		f, err := file.OpenParquetFile(p, false)
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		md := f.MetaData()
		col := md.Schema.ColumnIndexByName("device_id")
		for i := 0; i < md.NumRowGroups(); i++ {
			rg := md.RowGroup(i)
			cc, err := rg.ColumnChunk(col)
			if err != nil {
				tb.Fatal(err)
			}
			st, err := cc.Statistics()
			if err != nil || st == nil {
				tb.Fatal("no device_id statistics", err)
			}
			s := st.(*metadata.ByteArrayStatistics)
			if string(s.Min()) <= device && device <= string(s.Max()) {
				for c := 0; c < rg.NumColumns(); c++ {
					cc, _ := rg.ColumnChunk(c)
					bytes += cc.TotalCompressedSize()
				}
			}
		}
		return nil
	})
	return files, bytes
}

// oneDevice is the query the lake issue measures: one device over the
// day, through the views.
func oneDevice(tb testing.TB, root, device string) (answer string, ms float64) {
	views, err := athena.DuckDB(root)
	if err != nil {
		tb.Fatal(err)
	}
	q := views + fmt.Sprintf(`SELECT (SELECT count(*) || ',' || round(sum(metrics['temp_c']), 6) || ',' || min(ts) || ',' || max(ts) FROM raw WHERE dt = '2026-11-27' AND device_id = '%[1]s')
	  || ' ' || (SELECT count(*) || ',' || round(sum("sum"), 6) || ',' || min("min") || ',' || max("max") FROM windows WHERE dt = '2026-11-27' AND device_id = '%[1]s') AS a`, device)
	var times []float64
	for range 5 {
		res, err := duckdb.Query(q)
		if err != nil {
			tb.Fatal(err)
		}
		answer = fmt.Sprint(res.Rows[0][0])
		times = append(times, res.ElapsedMs)
	}
	slices.Sort(times)
	return answer, times[len(times)/2]
}

// BenchmarkLakeDay compacts a day of a fleet (1,000 devices, a reading
// every 10 s: 8.64M raw rows, 1.44M windows) and measures the one-device
// query before and after, in the same run: DuckDB's time (median of 5,
// one thread) and what a reader that skips by row-group statistics
// fetches. Set TAPLINE_BENCH_LAKE=1 (make bench-lake); it needs ~3 GiB
// and a few minutes.
func BenchmarkLakeDay(b *testing.B) {
	if os.Getenv("TAPLINE_BENCH_LAKE") == "" {
		b.Skip("TAPLINE_BENCH_LAKE=1 runs it (make bench-lake)")
	}
	server.Require(b, duckdb.Available())
	devices := 1000
	if n, err := strconv.Atoi(os.Getenv("TAPLINE_BENCH_LAKE_DEVICES")); err == nil && n > 0 {
		devices = n
	}
	for range b.N {
		b.StopTimer()
		root := b.TempDir()
		rawRows, windowRows := lakeDay(b, root, devices)
		device := fmt.Sprintf("dev-%05d", devices/3)
		answerBefore, msBefore := oneDevice(b, root, device)
		filesBefore, bytesBefore := scanned(b, root, device)
		store, _ := localdir.New(root)
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		peak := make(chan uint64)
		done := make(chan struct{})
		go func() { // the heap's high-water mark while compaction runs
			var m runtime.MemStats
			var hi uint64
			for {
				select {
				case <-done:
					peak <- hi
					return
				case <-time.After(20 * time.Millisecond):
					runtime.ReadMemStats(&m)
					hi = max(hi, m.HeapInuse)
				}
			}
		}()
		b.StartTimer()
		t0 := time.Now()
		rep, err := compact.Run(context.Background(), compact.Options{Store: store, Before: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC).UnixMilli(), DeleteNow: true, Datasets: []string{layout.Raw, layout.Windows}})
		elapsed := time.Since(t0)
		b.StopTimer()
		close(done)
		heap := <-peak // the whole heap's high-water mark: base is what was left before
		var largest int64
		for _, p := range rep.Partitions {
			largest = max(largest, p.BytesIn)
		}
		if err != nil {
			b.Fatal(err)
		}
		if rep.Rows != int64(rawRows+windowRows) {
			b.Fatalf("compacted %d rows, landed %d", rep.Rows, rawRows+windowRows)
		}
		answerAfter, msAfter := oneDevice(b, root, device)
		if answerAfter != answerBefore {
			b.Fatalf("one device's day: %s before, %s after", answerBefore, answerAfter)
		}
		filesAfter, bytesAfter := scanned(b, root, device)
		b.ReportMetric(float64(rep.Rows)/elapsed.Seconds(), "rows/s")
		b.ReportMetric(msBefore, "query-before-ms")
		b.ReportMetric(msAfter, "query-after-ms")
		b.ReportMetric(msBefore/msAfter, "query-speedup")
		b.ReportMetric(float64(filesBefore), "files-before")
		b.ReportMetric(float64(filesAfter), "files-after")
		b.ReportMetric(float64(bytesBefore)/(1<<20), "scan-MB-before")
		b.ReportMetric(float64(bytesAfter)/(1<<20), "scan-MB-after")
		b.ReportMetric(float64(rep.BytesIn)/(1<<20), "lake-MB-before")
		b.ReportMetric(float64(rep.BytesOut)/(1<<20), "lake-MB-after")
		b.ReportMetric(float64(largest)/(1<<20), "partition-MB")
		b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(base.HeapInuse)/(1<<20), "base-heap-MB")
		b.Logf("%s: %s; %d rows", device, answerAfter, rep.Rows)
	}
}
