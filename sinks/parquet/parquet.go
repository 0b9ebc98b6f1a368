// Package parquet encodes tapline's three datasets (raw telemetry, window
// aggregates, alerts) as Parquet files Athena reads without surprises:
// the Arrow schemas of package datasets, zstd compression, dictionary
// encoding for the low-cardinality string columns, statistics on every
// column, timestamps as INT64 milliseconds adjusted to UTC.
//
// An encoder buffers rows of one dataset and writes them as one file.
// The bytes of the file are a function of the rows alone (no wall-clock
// time, no host names), which is what makes a replay after a crash write
// the same object again. Encoders are not safe for concurrent use: each
// shard owns its own.
package parquet

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/datasets"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// Compression is a codec for the files' column chunks.
type Compression string

// Supported codecs.
const (
	Zstd   Compression = "zstd"
	Snappy Compression = "snappy"
)

// Options configure an encoder.
type Options struct {
	Compression Compression // default Zstd
	// ZstdLevel is zstd's level, 1 to 22 (klauspost/compress has four
	// speeds: 1, 2-3, 4-7, 8 and up). Default 3, zstd's own.
	ZstdLevel int
	// RowGroupRows bounds a row group. Default 128k rows: with a flush
	// every few hundred thousand rows a file has one or a few row groups,
	// large enough for Athena to skip by statistics.
	RowGroupRows int64
}

// createdBy is written into every file. It is constant on purpose: a
// version string here would make files differ between builds, and a
// replay after an upgrade would write a second object.
const createdBy = "tapline"

// props are the writer properties of a dataset's files.
func (o Options) props(dataset string, sortedBy []pq.SortingColumn) (*pq.WriterProperties, error) {
	codec := compress.Codecs.Zstd
	switch o.Compression {
	case "", Zstd:
	case Snappy:
		codec = compress.Codecs.Snappy
	default:
		return nil, fmt.Errorf("parquet: unknown compression %q (want zstd or snappy)", o.Compression)
	}
	rows := o.RowGroupRows
	if rows <= 0 {
		rows = 128 << 10
	}
	if o.ZstdLevel < 0 || o.ZstdLevel > 22 {
		return nil, fmt.Errorf("parquet: zstd level %d out of 1..22", o.ZstdLevel)
	}
	opts := []pq.WriterProperty{
		pq.WithCompression(codec),
		pq.WithStats(true),
		pq.WithDictionaryDefault(false),
		pq.WithMaxRowGroupLength(rows),
		pq.WithCreatedBy(createdBy),
		pq.WithVersion(pq.V2_LATEST),
	}
	if o.ZstdLevel != 0 && codec == compress.Codecs.Zstd {
		opts = append(opts, pq.WithCompressionLevel(o.ZstdLevel))
	}
	for _, col := range dictionary[dataset] {
		opts = append(opts, pq.WithDictionaryFor(col, true))
	}
	for _, col := range noStats[dataset] {
		opts = append(opts, pq.WithStatsFor(col, false))
	}
	if len(sortedBy) > 0 {
		opts = append(opts, pq.WithSortingColumns(sortedBy))
	}
	return pq.NewWriterProperties(opts...), nil
}

// dictionary lists each dataset's low-cardinality string columns, the
// ones dictionary-encoded.
var dictionary = map[string][]string{
	"raw":      {"device_id", "shard_id"},
	"windows":  {"window_spec", "device_id", "metric"},
	"alerts":   {"rule", "kind", "severity", "state", "device_id", "metric", "window_spec"},
	"manifest": {"role"},
}

// noStats lists the columns written without min/max statistics: no
// engine prunes on them (a map's keys and values are every metric's
// mixed, and Trino, Athena and DuckDB filter a map by subscript, which
// does not consult them), and a raw file's keys are six strings a row
// compared twice each (8% of BenchmarkEncodeRaw).
var noStats = map[string][]string{
	"raw": {"metrics.key_value.key", "metrics.key_value.value"},
}

// batchFile is the part the three datasets' encoders share: how a batch
// becomes one Parquet file.
type batchFile struct {
	schema *arrow.Schema // the dataset's, dictionary columns as dictionaries
	props  *pq.WriterProperties
	rows   int
	size   int // bytes of the last file
}

func newFile(schema *arrow.Schema, o Options, dataset string) (batchFile, dictionaryColumns, error) {
	props, err := o.props(dataset, nil)
	if err != nil {
		return batchFile{}, dictionaryColumns{}, err
	}
	d := newDictionaryColumns(schema, dictionary[dataset])
	return batchFile{schema: d.schema, props: props}, d, nil
}

// Rows is the number of rows buffered.
func (f *batchFile) Rows() int { return f.rows }

// writeColumns writes cols, one per field of the schema, as one file,
// and releases them.
func (f *batchFile) writeColumns(w io.Writer, cols []arrow.Array) (int64, error) {
	rec := array.NewRecordBatch(f.schema, cols, int64(f.rows))
	for _, c := range cols {
		c.Release() // rec holds them
	}
	defer rec.Release()
	f.rows = 0
	n, err := write(w, f.schema, f.props, rec, nil)
	f.size = int(n)
	return n, err
}

// bytes is writeTo into a new buffer sized from the last file.
func (f *batchFile) bytes(writeTo func(io.Writer) (int64, error)) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(f.size + f.size/8) // the last file's size, and some
	_, err := writeTo(&buf)
	return buf.Bytes(), err
}

// maxReserve bounds the rows an encoder keeps room for between files,
// so one huge batch does not keep its buffers' size for the encoder's
// life.
const maxReserve = 128 << 10

// write writes rec as one Parquet file of schema with props. group, if
// not nil, gives each row group's rows schema's columns (as
// dictionaryColumns.apply does); without it rec has them, and a file of
// several row groups has its dictionary columns recoded per row group
// (dict.go).
func write(w io.Writer, schema *arrow.Schema, props *pq.WriterProperties, rec arrow.RecordBatch, group func(arrow.RecordBatch) arrow.RecordBatch) (int64, error) {
	cw := &countingWriter{w: w}
	fw, err := newWriter(schema, cw, props)
	if err != nil {
		return cw.n, fmt.Errorf("parquet: %w", err)
	}
	if err := writeRowGroups(fw, rec, props.MaxRowGroupLength(), group); err != nil {
		fw.Close()
		return cw.n, fmt.Errorf("parquet: write %d rows: %w", rec.NumRows(), err)
	}
	if err := fw.Close(); err != nil {
		return cw.n, fmt.Errorf("parquet: close: %w", err)
	}
	return cw.n, nil
}

// writeRowGroups writes rec in row groups of at most rows, each through
// group (see write).
func writeRowGroups(fw fileWriter, rec arrow.RecordBatch, rows int64, group func(arrow.RecordBatch) arrow.RecordBatch) error {
	if group == nil {
		if rec.NumRows() <= rows || !slices.ContainsFunc(rec.Columns(), func(c arrow.Array) bool { return c.DataType().ID() == arrow.DICTIONARY }) {
			return fw.Write(rec)
		}
		group = recoder()
	}
	for off := int64(0); off == 0 || off < rec.NumRows(); off += rows {
		part := rec.NewSlice(off, min(off+rows, rec.NumRows()))
		g := group(part)
		part.Release()
		err := fw.Write(g)
		g.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Windows encodes the window aggregates dataset (datasets.Windows).
type Windows struct {
	batchFile
	spec, device, metric                                        dictCol
	start, end, count, firstTS, lastTS                          fixed[int64]
	sum, min, max, mean, stddev, m2, first, last, q50, q90, q99 fixed[float64]
	sketch                                                      varlen
	buf                                                         []byte
}

// NewWindows returns an empty windows encoder.
func NewWindows(o Options) (*Windows, error) {
	f, _, err := newFile(datasets.Windows, o, "windows")
	return &Windows{batchFile: f, spec: newDict(), device: newDict(), metric: newDict()}, err
}

// Append buffers one closed window.
func (e *Windows) Append(w *windows.Window) {
	addDict(&e.spec, w.Spec.Name)
	e.start.add(w.Start)
	e.end.add(w.End)
	addDict(&e.device, w.DeviceID)
	addDict(&e.metric, w.Metric)
	e.count.add(w.Count)
	e.sum.add(w.Sum)
	e.min.add(w.Min)
	e.max.add(w.Max)
	e.mean.add(w.Mean)
	e.stddev.add(w.Stddev())
	e.m2.add(w.M2)
	e.first.add(w.First)
	e.firstTS.add(w.FirstTS)
	e.last.add(w.Last)
	e.lastTS.add(w.LastTS)
	sk := w.Sketch != nil
	if sk {
		e.q50.addOptional(w.Quantile(0.5), true)
		e.q90.addOptional(w.Quantile(0.9), true)
		e.q99.addOptional(w.Quantile(0.99), true)
		e.buf = e.buf[:0]
		w.Sketch.Encode(&e.buf, false)
	} else {
		e.q50.addOptional(0, false)
		e.q90.addOptional(0, false)
		e.q99.addOptional(0, false)
		e.buf = e.buf[:0]
	}
	e.sketch.addOptional(e.buf, sk)
	e.rows++
}

// WriteTo writes the buffered windows as one Parquet file and empties
// the encoder. It writes nothing and returns 0 when none are buffered.
func (e *Windows) WriteTo(w io.Writer) (int64, error) {
	if e.rows == 0 {
		return 0, nil
	}
	n, err := e.writeColumns(w, e.columns())
	for _, d := range []*dictCol{&e.spec, &e.device, &e.metric} {
		d.reset(maxReserve)
	}
	for _, c := range []*fixed[int64]{&e.start, &e.end, &e.count, &e.firstTS, &e.lastTS} {
		c.reset(maxReserve)
	}
	for _, c := range []*fixed[float64]{&e.sum, &e.min, &e.max, &e.mean, &e.stddev, &e.m2, &e.first, &e.last, &e.q50, &e.q90, &e.q99} {
		c.reset(maxReserve)
	}
	e.sketch.reset(maxReserve)
	return n, err
}

// Bytes is WriteTo into a new buffer.
func (e *Windows) Bytes() ([]byte, error) { return e.bytes(e.WriteTo) }

// columns views the buffered rows as arrays, in the schema's order.
func (e *Windows) columns() []arrow.Array {
	ts, f64 := datasets.Windows.Field(1).Type, arrow.PrimitiveTypes.Float64
	return []arrow.Array{e.spec.array(), e.start.array(ts), e.end.array(ts), e.device.array(), e.metric.array(),
		e.count.array(arrow.PrimitiveTypes.Int64), e.sum.array(f64), e.min.array(f64), e.max.array(f64), e.mean.array(f64),
		e.stddev.array(f64), e.m2.array(f64), e.first.array(f64), e.firstTS.array(ts), e.last.array(f64), e.lastTS.array(ts),
		e.q50.array(f64), e.q90.array(f64), e.q99.array(f64), e.sketch.array(arrow.BinaryTypes.Binary)}
}

// Alerts encodes the alerts dataset (datasets.Alerts).
//
// Alerts are few (a handful a batch where windows are thousands), so
// they keep Arrow's builders.
type Alerts struct {
	batchFile
	b    *array.RecordBuilder
	dict dictionaryColumns
}

// NewAlerts returns an empty alerts encoder.
func NewAlerts(o Options) (*Alerts, error) {
	f, d, err := newFile(datasets.Alerts, o, "alerts")
	return &Alerts{batchFile: f, b: array.NewRecordBuilder(memory.DefaultAllocator, datasets.Alerts), dict: d}, err
}

// WriteTo writes the buffered alerts as one Parquet file and empties the
// encoder. It writes nothing and returns 0 when none are buffered.
func (e *Alerts) WriteTo(w io.Writer) (int64, error) {
	if e.rows == 0 {
		return 0, nil
	}
	rec := e.b.NewRecordBatch()
	defer rec.Release()
	out := e.dict.apply(rec)
	cols := out.Columns()
	for _, c := range cols {
		c.Retain() // writeColumns releases them
	}
	out.Release()
	return e.writeColumns(w, cols)
}

// Bytes is WriteTo into a new buffer.
func (e *Alerts) Bytes() ([]byte, error) { return e.bytes(e.WriteTo) }

// Append buffers one alert.
func (e *Alerts) Append(a *rules.Alert) {
	f := e.b.Fields()
	for i, s := range []string{a.ID, a.Incident, a.Rule, a.Kind, a.Severity, a.Device} {
		f[i].(*array.StringBuilder).Append(s)
	}
	appendOptional(f[6].(*array.StringBuilder), a.Metric)
	appendOptional(f[7].(*array.StringBuilder), a.Window)
	f[8].(*array.StringBuilder).Append(string(a.State))
	f[9].(*array.Float64Builder).Append(a.Value)
	f[10].(*array.Float64Builder).Append(a.Threshold)
	f[11].(*array.TimestampBuilder).Append(arrow.Timestamp(a.Start))
	f[12].(*array.TimestampBuilder).Append(arrow.Timestamp(a.End))
	f[13].(*array.TimestampBuilder).Append(arrow.Timestamp(a.At))
	f[14].(*array.StringBuilder).Append(a.Message)
	appendOptional(f[15].(*array.StringBuilder), a.Reason)
	mb := f[16].(*array.MapBuilder)
	if len(a.Attribution) == 0 {
		mb.AppendNull()
	} else {
		mb.Append(true)
		keys, vals := mb.KeyBuilder().(*array.StringBuilder), mb.ItemBuilder().(*array.Float64Builder)
		for _, sh := range a.Attribution {
			keys.Append(sh.Metric)
			vals.Append(sh.Share)
		}
	}
	appendOptional(f[17].(*array.StringBuilder), a.Summary)
	appendOptional(f[18].(*array.StringBuilder), a.RunbookURL)
	lb := f[19].(*array.MapBuilder)
	if len(a.Labels) == 0 {
		lb.AppendNull()
	} else {
		lb.Append(true)
		keys, vals := lb.KeyBuilder().(*array.StringBuilder), lb.ItemBuilder().(*array.StringBuilder)
		for _, k := range slices.Sorted(maps.Keys(a.Labels)) { // equal alerts, equal bytes
			keys.Append(k)
			vals.Append(a.Labels[k])
		}
	}
	appendOptionalInt(f[20].(*array.Int64Builder), int64(a.Repeat), a.Repeat > 0)
	e.rows++
}

// appendOptionalInt appends v, or null when it is not present.
func appendOptionalInt(b *array.Int64Builder, v int64, present bool) {
	if !present {
		b.AppendNull()
		return
	}
	b.Append(v)
}

func appendOptional(b *array.StringBuilder, s string) {
	if s == "" {
		b.AppendNull()
		return
	}
	b.Append(s)
}

// Raw encodes the raw telemetry dataset (datasets.Raw): one row per
// accepted record, its metrics as a MAP.
type Raw struct {
	batchFile
	device, shard        dictCol
	ts, seq, arrival, at fixed[int64] // at: the reading's index
	metrics              strMap
	sequence             varlen
}

// NewRaw returns an empty raw encoder.
func NewRaw(o Options) (*Raw, error) {
	f, _, err := newFile(datasets.Raw, o, "raw")
	return &Raw{batchFile: f, device: newDict(), shard: newDict()}, err
}

// Append buffers one decoded record with where it came from.
func (e *Raw) Append(r *schemas.Record, arrival int64, shard, seq string) {
	addDict(&e.device, r.DeviceID)
	e.ts.add(r.Time)
	e.seq.addOptional(r.Seq, r.Seq >= 0)
	e.metrics.startRow()
	for _, m := range r.Metrics {
		addVar(&e.metrics.keys, m.Name)
		e.metrics.items.add(m.Value)
	}
	e.metrics.endRow()
	e.arrival.add(arrival)
	addDict(&e.shard, shard)
	addVar(&e.sequence, seq)
	e.at.addOptional(int64(r.Reading), r.Reading >= 0)
	e.rows++
}

// WriteTo writes the buffered rows as one Parquet file and empties the
// encoder. It writes nothing and returns 0 when none are buffered.
func (e *Raw) WriteTo(w io.Writer) (int64, error) {
	if e.rows == 0 {
		return 0, nil
	}
	n, err := e.writeColumns(w, e.columns())
	e.device.reset(maxReserve)
	e.shard.reset(maxReserve)
	for _, c := range []*fixed[int64]{&e.ts, &e.seq, &e.arrival, &e.at} {
		c.reset(maxReserve)
	}
	e.metrics.reset(maxReserve, 16*maxReserve) // entries: sixteen metrics a row, generously
	e.sequence.reset(maxReserve)
	return n, err
}

// Bytes is WriteTo into a new buffer.
func (e *Raw) Bytes() ([]byte, error) { return e.bytes(e.WriteTo) }

// columns views the buffered rows as arrays, in the schema's order.
func (e *Raw) columns() []arrow.Array {
	ts, i64 := datasets.Raw.Field(1).Type, arrow.PrimitiveTypes.Int64
	return []arrow.Array{e.device.array(), e.ts.array(ts), e.seq.array(i64), e.metrics.array(datasets.Raw.Field(3).Type.(*arrow.MapType)),
		e.arrival.array(ts), e.shard.array(), e.sequence.array(arrow.BinaryTypes.String), e.at.array(i64)}
}
