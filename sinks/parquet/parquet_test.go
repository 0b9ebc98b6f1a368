package parquet

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/datasets"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

type nopDL struct{}

func (nopDL) Write(*schemas.DeadLetter) error { return nil }

// fill runs a few records through a real processor and encodes its
// windows and alerts, and the records themselves as raw rows.
func fill(t *testing.T, o Options, quantiles bool) (*Windows, *Alerts, *Raw) {
	t.Helper()
	ew, err := NewWindows(o)
	if err != nil {
		t.Fatal(err)
	}
	ea, _ := NewAlerts(o)
	er, _ := NewRaw(o)
	one, _ := windows.ParseSpec("1m")
	hop, _ := windows.ParseSpec("3m/1m")
	cfg, err := rules.Parse("r.yml", []byte("rules:\n  - {name: hot, kind: threshold, metric: temp_c, window: 1m, above: 8}\n  - {name: gone, kind: missing, after: 2m}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.NewProcessor(pipeline.Options{
		Windows:     windows.Options{Specs: []windows.Spec{one, hop}, Quantiles: quantiles},
		Rules:       cfg,
		DeadLetters: nopDL{},
		OnWindow:    ew.Append,
		OnAlert:     ea.Append,
	})
	if err != nil {
		t.Fatal(err)
	}
	dec := schemas.NewDecoder(schemas.Options{})
	base := time.Date(2026, 11, 27, 23, 58, 0, 0, time.UTC).UnixMilli() // crosses midnight
	for i := 0; i < 400; i++ {
		dev := []string{"keg-0001", "keg-0002", "keg-0003"}[i%3]
		if i > 200 && dev == "keg-0003" {
			continue // goes silent: the missing rule fires
		}
		data := []byte(`{"device_id":"` + dev + `","ts":` + itoa(base+int64(i)*1000) + `,"seq":` + itoa(int64(i)) + `,"metrics":{"temp_c":` + itoa(int64(4+i%7)) + `,"flow_lpm":0.5}}`)
		if r, err := dec.Decode(data, 0); err != nil {
			t.Fatal(err)
		} else {
			er.Append(r, base+int64(i)*1000+5, "shardId-000000000001", itoa(int64(1000+i)))
		}
		p.Process(data, "", 0)
	}
	p.Flush()
	if ew.Rows() == 0 || ea.Rows() == 0 || er.Rows() != 334 {
		t.Fatalf("rows: windows %d alerts %d raw %d", ew.Rows(), ea.Rows(), er.Rows())
	}
	return ew, ea, er
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestAthenaTypes reads the files' Parquet schema, not just the data:
// DuckDB would accept more than Athena does.
func TestAthenaTypes(t *testing.T) {
	ew, ea, er := fill(t, Options{}, true)
	for name, enc := range map[string]interface{ Bytes() ([]byte, error) }{"windows": ew, "alerts": ea, "raw": er} {
		data, err := enc.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		r, err := file.NewParquetReader(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sc := r.MetaData().Schema
		for i := 0; i < sc.NumColumns(); i++ {
			col := sc.Column(i)
			path := col.Path()
			// Interfaces, not concrete types: arrow-go has moved these
			// between value and pointer receivers across versions.
			type timestamp interface {
				TimeUnit() schema.TimeUnitType
				IsAdjustedToUTC() bool
			}
			type integer interface{ IsSigned() bool }
			switch lt := col.LogicalType().(type) {
			case timestamp:
				if lt.TimeUnit() != schema.TimeUnitMillis || !lt.IsAdjustedToUTC() || col.PhysicalType() != pq.Types.Int64 {
					t.Errorf("%s.%s: %s on %s, want INT64 millis adjusted to UTC", name, path, lt, col.PhysicalType())
				}
			case schema.StringLogicalType:
				if col.PhysicalType() != pq.Types.ByteArray {
					t.Errorf("%s.%s: string on %s", name, path, col.PhysicalType())
				}
			case integer:
				if !lt.IsSigned() {
					t.Errorf("%s.%s: unsigned integer", name, path)
				}
			}
			if path == "device_id" && !col.LogicalType().Equals(schema.StringLogicalType{}) {
				t.Errorf("%s.device_id: %s, want String (UTF8)", name, col.LogicalType())
			}
			if col.PhysicalType() == pq.Types.Int96 {
				t.Errorf("%s.%s: INT96", name, path)
			}
			if strings.HasSuffix(path, "_ts") || strings.HasPrefix(path, "window_") && path != "window_spec" || path == "ts" || path == "at" || path == "arrival" {
				if _, ok := col.LogicalType().(timestamp); !ok {
					t.Errorf("%s.%s: %s, want a timestamp", name, path, col.LogicalType())
				}
			}
		}
		rg := r.MetaData().RowGroup(0)
		for i := 0; i < sc.NumColumns(); i++ {
			cc, _ := rg.ColumnChunk(i)
			if cc.Compression() != compress.Codecs.Zstd {
				t.Errorf("%s.%s: compression %s", name, sc.Column(i).Path(), cc.Compression())
			}
			// Statistics on every column an engine can prune by.
			ok, _ := cc.StatsSet()
			if want := !slices.Contains(noStats[name], sc.Column(i).Path()); ok != want {
				t.Errorf("%s.%s: statistics %v, want %v", name, sc.Column(i).Path(), ok, want)
			}
			if sc.Column(i).Path() == "device_id" && !hasDict(cc.Encodings()) {
				t.Errorf("%s.device_id: not dictionary encoded: %v", name, cc.Encodings())
			}
		}
		if name == "raw" {
			m := sc.Root().Field(3)
			if m.Name() != "metrics" || !m.LogicalType().Equals(schema.MapLogicalType{}) {
				t.Errorf("raw.metrics: %s %s, want the standard MAP", m.Name(), m.LogicalType())
			}
			var paths []string
			for i := 0; i < sc.NumColumns(); i++ {
				paths = append(paths, sc.Column(i).Path())
			}
			if !strings.Contains(strings.Join(paths, " "), "metrics.key_value.key metrics.key_value.value") {
				t.Errorf("raw.metrics leaves: %v", paths)
			}
		}
	}
}

func hasDict(encs []pq.Encoding) bool {
	for _, e := range encs {
		if e == pq.Encodings.RLEDict || e == pq.Encodings.PlainDict {
			return true
		}
	}
	return false
}

// TestDeterministicBytes: the same rows give the same file, byte for
// byte, which is what lets a replay write the same S3 object.
func TestDeterministicBytes(t *testing.T) {
	for _, o := range []Options{{}, {Compression: Snappy, RowGroupRows: 50}} {
		a1, b1, c1 := fill(t, o, true)
		a2, b2, c2 := fill(t, o, true)
		for i, pair := range [][2]interface{ Bytes() ([]byte, error) }{{a1, a2}, {b1, b2}, {c1, c2}} {
			x, err1 := pair[0].Bytes()
			y, err2 := pair[1].Bytes()
			if err1 != nil || err2 != nil || len(x) == 0 || !bytes.Equal(x, y) {
				t.Fatalf("dataset %d, %+v: files differ (%d vs %d bytes, %v %v)", i, o, len(x), len(y), err1, err2)
			}
		}
	}
	if _, err := NewWindows(Options{Compression: "lz4"}); err == nil {
		t.Fatal("unknown compression accepted")
	}
}

// TestReusedEncoderSameBytes: an encoder that wrote a batch before (its
// builders sized for it) writes the next batch's file byte for byte as a
// new encoder does, for a smaller batch and for a larger one.
func TestReusedEncoderSameBytes(t *testing.T) {
	dec := schemas.NewDecoder(schemas.Options{})
	spec, _ := windows.ParseSpec("1m")
	raw := func(e *Raw, from, to int) {
		for i := from; i < to; i++ {
			r, err := dec.Decode([]byte(`{"device_id":"dev-`+itoa(int64(i%37))+`","ts":`+itoa(1_764_000_000_000+int64(i)*10)+`,"metrics":{"a":`+itoa(int64(i))+`,"b":1.5}}`), 0)
			if err != nil {
				t.Fatal(err)
			}
			e.Append(r, r.Time+5, "shardId-000000000000", itoa(int64(i)))
		}
	}
	win := func(e *Windows, from, to int) {
		for i := from; i < to; i++ {
			w := windows.Window{Spec: &spec, Start: int64(i) * 60_000, End: int64(i+1) * 60_000, DeviceID: "dev-" + itoa(int64(i%37)), Metric: "a",
				Agg: windows.Agg{Count: 2, Sum: float64(i), Min: 1, Max: 2, Mean: 1.5, FirstTS: int64(i) * 60_000, LastTS: int64(i) * 60_000}}
			e.Append(&w)
		}
	}
	for _, n := range []int{100, 5000} {
		used, fresh := mustRaw(t), mustRaw(t)
		raw(used, 0, 1000)
		if _, err := used.Bytes(); err != nil {
			t.Fatal(err)
		}
		raw(used, 1000, 1000+n)
		raw(fresh, 1000, 1000+n)
		x, _ := used.Bytes()
		y, _ := fresh.Bytes()
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Fatalf("raw, %d rows after 1000: the reused encoder wrote %d bytes, a new one %d, not the same", n, len(x), len(y))
		}
		uw, _ := NewWindows(Options{})
		fw, _ := NewWindows(Options{})
		win(uw, 0, 1000)
		if _, err := uw.Bytes(); err != nil {
			t.Fatal(err)
		}
		win(uw, 1000, 1000+n)
		win(fw, 1000, 1000+n)
		x, _ = uw.Bytes()
		y, _ = fw.Bytes()
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Fatalf("windows, %d rows after 1000: the reused encoder wrote %d bytes, a new one %d, not the same", n, len(x), len(y))
		}
	}
}

// TestDictionaryColumnsReadBackAsWritten: the files written from
// dictionary arrays (dict.go) read back, through Decode, as exactly the
// rows the encoders were given: strings, nulls and all, for the three
// datasets; and a sliced column with nulls converts to the same values.
func TestDictionaryColumnsReadBackAsWritten(t *testing.T) {
	// One row group a file, and row groups of seven rows (each with the
	// dictionary of its own rows, dict.go).
	for _, o := range []Options{{}, {RowGroupRows: 7}} {
		t.Run(fmt.Sprint(o.RowGroupRows), func(t *testing.T) { dictionaryColumnsReadBack(t, o) })
	}
}

func dictionaryColumnsReadBack(t *testing.T, o Options) {
	w1, a1, r1 := fill(t, o, true)
	w2, a2, r2 := fill(t, o, true)
	// An alert without metric or window: nulls in two dictionary columns.
	for _, a := range []*Alerts{a1, a2} {
		a.Append(&rules.Alert{ID: "x", Incident: "y", Rule: "gone", Kind: "missing", Severity: "warning", Device: "keg-0003", State: rules.Firing})
	}
	for _, c := range []struct {
		dataset string
		file    interface{ Bytes() ([]byte, error) }
		want    func() arrow.RecordBatch // the rows appended, as the dataset's schema has them
	}{
		{"windows", w1, func() arrow.RecordBatch { return plain(datasets.Windows, w2.columns()) }},
		{"alerts", a1, a2.b.NewRecordBatch},
		{"raw", r1, func() arrow.RecordBatch { return plain(datasets.Raw, r2.columns()) }},
	} {
		data, err := c.file.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(context.Background(), c.dataset, data)
		if err != nil {
			t.Fatal(err)
		}
		if groups := ownDictionaries(t, data, "device_id"); o.RowGroupRows > 0 && c.dataset != "alerts" && groups < 2 {
			t.Errorf("%s: %d row groups", c.dataset, groups)
		}
		want := c.want()
		if !array.RecordEqual(got, want) {
			t.Errorf("%s: the file reads back other rows than were appended", c.dataset)
		}
		got.Release()
		want.Release()
	}
	b := array.NewStringBuilder(memory.DefaultAllocator)
	b.AppendValues([]string{"a", "b", "", "a", "c", "b"}, []bool{true, true, false, true, true, false})
	all := b.NewStringArray()
	sliced := array.NewSlice(all, 1, 6).(*array.String) // b, null, a, c, null
	d := newDictionaryColumns(arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true}}, nil), []string{"s"})
	dict := d.encode(sliced).(*array.Dictionary)
	var vals []string
	for i := range dict.Len() {
		if dict.IsNull(i) {
			vals = append(vals, "null")
			continue
		}
		vals = append(vals, dict.Dictionary().(*array.String).Value(dict.GetValueIndex(i)))
	}
	if strings.Join(vals, ",") != "b,null,a,c,null" {
		t.Fatalf("sliced column as a dictionary: %v", vals)
	}
}

// ownDictionaries checks that each row group's dictionary page for
// column holds exactly the distinct values of that row group's rows, and
// returns the number of row groups.
func ownDictionaries(t *testing.T, data []byte, column string) int {
	t.Helper()
	r, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	col := r.MetaData().Schema.ColumnIndexByName(column)
	for g := range r.NumRowGroups() {
		rg := r.RowGroup(g)
		pages, err := rg.GetColumnPageReader(col)
		if err != nil || !pages.Next() {
			t.Fatalf("row group %d: %v %v", g, err, pages.Err())
		}
		dict, ok := pages.Page().(*file.DictionaryPage)
		if !ok {
			t.Fatalf("row group %d: %s's first page is not a dictionary", g, column)
		}
		cr, err := rg.Column(col)
		if err != nil {
			t.Fatal(err)
		}
		n := int(rg.NumRows())
		values, defs := make([]pq.ByteArray, n), make([]int16, n)
		_, read, err := cr.(*file.ByteArrayColumnChunkReader).ReadBatch(int64(n), values, defs, nil)
		if err != nil {
			t.Fatal(err)
		}
		distinct := map[string]bool{}
		for _, v := range values[:read] {
			distinct[string(v)] = true
		}
		if int(dict.NumValues()) != len(distinct) {
			t.Errorf("row group %d: a dictionary of %d values for %d distinct %s", g, dict.NumValues(), len(distinct), column)
		}
	}
	return r.NumRowGroups()
}

// plain is cols as a record of schema: dictionary columns as strings.
func plain(schema *arrow.Schema, cols []arrow.Array) arrow.RecordBatch {
	for i, c := range cols {
		d, ok := c.(*array.Dictionary)
		if !ok {
			continue
		}
		b := array.NewStringBuilder(memory.DefaultAllocator)
		for j := range d.Len() {
			b.Append(d.Dictionary().(*array.String).Value(d.GetValueIndex(j)))
		}
		cols[i] = b.NewArray()
		d.Release()
	}
	rec := array.NewRecordBatch(schema, cols, int64(cols[0].Len()))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

func mustRaw(t *testing.T) *Raw {
	e, err := NewRaw(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestRoundTrip reads the windows back through Arrow and compares them
// with what the processor produced.
func TestRoundTrip(t *testing.T) {
	ew, _, er := fill(t, Options{}, false)
	rows := ew.Rows()
	data, err := ew.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if ew.Rows() != 0 {
		t.Fatal("encoder not emptied by Bytes")
	}
	tbl := readTable(t, data)
	if int(tbl.NumRows()) != rows {
		t.Fatalf("read %d rows, wrote %d", tbl.NumRows(), rows)
	}
	var total int64
	counts := tbl.Column(5).Data().Chunk(0).(*array.Int64)
	specs := tbl.Column(0).Data().Chunk(0).(*array.String)
	for i := 0; i < counts.Len(); i++ {
		if specs.Value(i) == "1m" {
			total += counts.Value(i)
		}
	}
	// 1m windows hold every accepted value exactly once: 334 records
	// (keg-0003 goes silent after record 200) of 2 metrics each.
	if total != 2*334 {
		t.Fatalf("1m windows count %d values, want %d", total, 2*334)
	}
	p50 := tbl.Column(16).Data().Chunk(0)
	if p50.NullN() != p50.Len() {
		t.Fatal("quantile columns should be null without sketches")
	}
	raw := readTable(t, mustBytes(t, er))
	ts := raw.Column(1).Data().Chunk(0).(*array.Timestamp)
	if ts.Value(0) != arrow.Timestamp(time.Date(2026, 11, 27, 23, 58, 0, 0, time.UTC).UnixMilli()) {
		t.Fatalf("first raw ts %v", ts.Value(0))
	}
}

func mustBytes(t *testing.T, e interface{ Bytes() ([]byte, error) }) []byte {
	t.Helper()
	b, err := e.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readTable(t *testing.T, data []byte) arrow.Table {
	t.Helper()
	r, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// TestAlertReasonAndAttribution: the alerts dataset's nullable reason
// and attribution columns hold what the alert carries, null when it
// carries none.
func TestAlertReasonAndAttribution(t *testing.T) {
	ea, err := NewAlerts(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ea.Append(&rules.Alert{ID: "a", Incident: "i", Rule: "pair", Kind: "forest", Severity: "warning", Device: "m-1", State: rules.Firing,
		Attribution: []schemas.MetricShare{{Metric: "b", Share: 0.85}, {Metric: "a", Share: 0.15}}})
	ea.Append(&rules.Alert{ID: "b", Incident: "j", Rule: "old", Kind: "threshold", Severity: "info", Device: "m-1", State: rules.Resolved,
		Reason: rules.ReasonRuleRemoved, Summary: "m-1 is hot", RunbookURL: "https://r.example/hot",
		Labels: map[string]string{"team": "cellar", "page": "yes"}})
	tbl := readTable(t, mustBytes(t, ea))
	idx := func(name string) int { return tbl.Schema().FieldIndices(name)[0] }
	reason := tbl.Column(idx("reason")).Data().Chunk(0).(*array.String)
	if !reason.IsNull(0) || reason.Value(1) != "rule_removed" {
		t.Fatalf("reason column: %v", reason)
	}
	at := tbl.Column(idx("attribution")).Data().Chunk(0).(*array.Map)
	keys, vals := at.Keys().(*array.String), at.Items().(*array.Float64)
	if at.IsNull(0) || !at.IsNull(1) || keys.Value(0) != "b" || vals.Value(0) != 0.85 || keys.Value(1) != "a" {
		t.Fatalf("attribution column: %v", at)
	}
	summary := tbl.Column(idx("summary")).Data().Chunk(0).(*array.String)
	url := tbl.Column(idx("runbook_url")).Data().Chunk(0).(*array.String)
	labels := tbl.Column(idx("labels")).Data().Chunk(0).(*array.Map)
	lk, lv := labels.Keys().(*array.String), labels.Items().(*array.String)
	if !summary.IsNull(0) || summary.Value(1) != "m-1 is hot" || url.Value(1) != "https://r.example/hot" ||
		!labels.IsNull(0) || lk.Value(0) != "page" || lv.Value(0) != "yes" || lk.Value(1) != "team" {
		t.Fatalf("summary %v, runbook_url %v, labels %v (keys in order)", summary, url, labels)
	}
}

// TestZstdAsArrow: the kept encoders write the bytes arrow-go's own codec
// writes, at every level, however often they were used before.
func TestZstdAsArrow(t *testing.T) {
	c, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	kept, ok := c.(*keptZstd)
	if !ok {
		t.Fatalf("zstd codec is %T, not the kept encoders", c)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 3 {
		for _, level := range []int{compress.DefaultCompressionLevel, 1, 3, 7, 12} {
			for _, n := range []int{0, 100, 70_000, 3 << 20} {
				src := make([]byte, n)
				for i := range src { // compressible: a few symbols, runs
					src[i] = byte(rng.IntN(4) * (i / 1000 % 3))
				}
				want := kept.Codec.EncodeLevel(nil, src, level)
				if got := kept.EncodeLevel(nil, src, level); !bytes.Equal(got, want) {
					t.Fatalf("round %d, level %d, %d bytes: %d compressed bytes differ from arrow-go's %d", round, level, n, len(got), len(want))
				}
				back, err := compress.Decode(kept, nil, want)
				if err != nil || !bytes.Equal(back, src) {
					t.Fatalf("level %d, %d bytes: round trip: %v", level, n, err)
				}
			}
		}
	}
	if got, want := kept.Encode(nil, []byte("tapline tapline tapline")), kept.Codec.Encode(nil, []byte("tapline tapline tapline")); !bytes.Equal(got, want) {
		t.Fatal("Encode differs from arrow-go's")
	}
}

// TestAppendReusesMemory: once an encoder has written a batch, appending
// the next batch's rows allocates nothing (its columns are refilled in
// place), and a batch over maxReserve rows does not keep its memory.
func TestAppendReusesMemory(t *testing.T) {
	spec, _ := windows.ParseSpec("1m")
	w := windows.Window{Spec: &spec, Start: 60_000, End: 120_000, DeviceID: "dev-1", Metric: "a", Agg: windows.Agg{Count: 1, Sum: 2}}
	r := &schemas.Record{DeviceID: []byte("dev-1"), Time: 60_000, Seq: 3, Reading: -1,
		Metrics: []schemas.Metric{{Name: []byte("a"), Value: 1}, {Name: []byte("b"), Value: 2}}}
	ew, er := mustWindows(t), mustRaw(t)
	for range 100 {
		ew.Append(&w)
		er.Append(r, 60_005, "shardId-000000000000", "49000")
	}
	mustBytes(t, ew)
	mustBytes(t, er)
	if n := testing.AllocsPerRun(100, func() { ew.Append(&w) }); n != 0 {
		t.Errorf("windows: %v allocations an Append", n)
	}
	if n := testing.AllocsPerRun(100, func() { er.Append(r, 60_005, "shardId-000000000000", "49000") }); n != 0 {
		t.Errorf("raw: %v allocations an Append", n)
	}
	// A batch under maxReserve rows keeps its room for the next (push's
	// growth stays within the bound: slices.Grow's overshot it, and every
	// batch past 98k rows regrew its columns from nothing).
	const rows = 100_000
	for range rows {
		er.Append(r, 60_005, "shardId-000000000000", "49000")
	}
	mustBytes(t, er)
	if c := cap(er.sequence.offsets); c < rows {
		t.Errorf("after %d rows the sequence column keeps room for %d", rows, c)
	}
	for range maxReserve + 1 {
		ew.Append(&w)
	}
	mustBytes(t, ew)
	if c := cap(ew.sum.v); c != 0 {
		t.Errorf("after %d rows the sum column keeps room for %d", maxReserve+1, c)
	}
}

func mustWindows(t *testing.T) *Windows {
	e, err := NewWindows(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
