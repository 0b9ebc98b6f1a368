package parquet

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
)

// BenchmarkEncodeWindows: Arrow build and zstd Parquet encode of window
// rows, 100k rows a file.
func BenchmarkEncodeWindows(b *testing.B) {
	spec, _ := windows.ParseSpec("1m")
	rows := make([]windows.Window, 100_000)
	for i := range rows {
		w := &rows[i]
		w.Spec, w.Start, w.End = &spec, 1_764_000_000_000+int64(i/6000)*60_000, 1_764_000_060_000+int64(i/6000)*60_000
		w.DeviceID, w.Metric = fmt.Sprintf("dev-%07d", i%1000), []string{"flow_lpm", "temp_c", "pressure_kpa", "battery_v", "rssi_dbm", "door_open"}[i%6]
		w.Agg = windows.Agg{Count: 60, Sum: float64(i), Min: 1, Max: 9, Mean: float64(i) / 60, M2: 3, FirstTS: w.Start, LastTS: w.End - 1, First: 2, Last: 8}
	}
	e, _ := NewWindows(Options{})
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		for i := range rows {
			e.Append(&rows[i])
		}
		n, err := e.WriteTo(io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	b.ReportMetric(float64(size)/float64(len(rows)), "file-B/row")
	b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkEncodeRaw: the same for raw rows with six metrics in the MAP.
func BenchmarkEncodeRaw(b *testing.B) {
	dec := schemas.NewDecoder(schemas.Options{})
	recs := make([]schemas.Record, 100_000)
	for i := range recs {
		r, err := dec.Decode(fmt.Appendf(nil, `{"device_id":"dev-%07d","ts":%d,"seq":%d,"metrics":{"flow_lpm":%d.5,"temp_c":4.1,"pressure_kpa":101.3,"battery_v":3.7,"rssi_dbm":-67,"door_open":0}}`,
			i%1000, 1_764_000_000_000+int64(i)*10, i, i%4), 0)
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = schemas.Record{DeviceID: append([]byte(nil), r.DeviceID...), Time: r.Time, Seq: r.Seq}
		for _, m := range r.Metrics {
			recs[i].Metrics = append(recs[i].Metrics, schemas.Metric{Name: append([]byte(nil), m.Name...), Value: m.Value})
		}
	}
	// Sequence numbers as a shard's are: 56 digits, increasing, the
	// same leading digits and different trailing ones.
	seqs := make([]string, len(recs))
	for i := range seqs {
		seqs[i] = fmt.Sprintf("4959033827149025660855969253836157%022d", 1_571_095_921_575_989+int64(i)*7_919)
	}
	e, _ := NewRaw(Options{})
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		for i := range recs {
			e.Append(&recs[i], recs[i].Time+5, "shardId-000000000000", seqs[i])
		}
		n, err := e.WriteTo(io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	b.ReportMetric(float64(size)/float64(len(recs)), "file-B/row")
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkEncodeCompacted: compaction's encoding (Encode) of 100k window
// rows sorted by device, as decoded from landing files (plain strings),
// in row groups of 8k rows (compaction's default).
func BenchmarkEncodeCompacted(b *testing.B) {
	spec, _ := windows.ParseSpec("1m")
	e, _ := NewWindows(Options{})
	for i := range 100_000 {
		w := windows.Window{Spec: &spec, Start: 1_764_000_000_000 + int64(i%100)*60_000, DeviceID: fmt.Sprintf("dev-%07d", i/600),
			Metric: []string{"flow_lpm", "temp_c", "pressure_kpa", "battery_v", "rssi_dbm", "door_open"}[i/100%6],
			Agg:    windows.Agg{Count: 60, Sum: float64(i), Min: 1, Max: 9, Mean: float64(i) / 60, M2: 3, First: 2, Last: 8}}
		w.End = w.Start + 60_000
		e.Append(&w)
	}
	data, err := e.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	rec, err := Decode(context.Background(), "windows", data)
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Release()
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		n, err := Encode(io.Discard, rec, Options{RowGroupRows: 8 << 10}, "device_id", "metric", "window_start")
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	b.ReportMetric(float64(size)/float64(rec.NumRows()), "file-B/row")
	b.ReportMetric(float64(b.N)*float64(rec.NumRows())/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkAppendWindows: buffering window rows alone, as a shard emits
// them at a minute's end (a device's metrics together, 10k devices), the
// file's writing not timed: the service's cost per window before
// encoding.
func BenchmarkAppendWindows(b *testing.B) {
	spec, _ := windows.ParseSpec("1m")
	metrics := []string{"flow_lpm", "temp_c", "pressure_kpa", "battery_v", "rssi_dbm", "door_open"}
	rows := make([]windows.Window, 60_000)
	for i := range rows {
		w := &rows[i]
		w.Spec, w.Start, w.End = &spec, 1_764_000_000_000, 1_764_000_060_000
		w.DeviceID, w.Metric = fmt.Sprintf("dev-%07d", i/6), metrics[i%6]
		w.Agg = windows.Agg{Count: 60, Sum: float64(i), Min: 1, Max: 9, Mean: float64(i) / 60, M2: 3, FirstTS: w.Start, LastTS: w.End - 1, First: 2, Last: 8}
	}
	e, _ := NewWindows(Options{})
	b.ReportAllocs()
	for b.Loop() {
		for i := range rows {
			e.Append(&rows[i])
		}
		b.StopTimer()
		if _, err := e.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/window")
}
