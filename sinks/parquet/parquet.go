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
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

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
	// RowGroupRows bounds a row group. Default 128k rows: with a flush
	// every few hundred thousand rows a file has one or a few row groups,
	// large enough for Athena to skip by statistics.
	RowGroupRows int64
}

// createdBy is written into every file. It is constant on purpose: a
// version string here would make files differ between builds, and a
// replay after an upgrade would write a second object.
const createdBy = "tapline"

func (o Options) props(dictionary []string, sortedBy []pq.SortingColumn) (*pq.WriterProperties, error) {
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
	opts := []pq.WriterProperty{
		pq.WithCompression(codec),
		pq.WithStats(true),
		pq.WithDictionaryDefault(false),
		pq.WithMaxRowGroupLength(rows),
		pq.WithCreatedBy(createdBy),
		pq.WithVersion(pq.V2_LATEST),
	}
	for _, col := range dictionary {
		opts = append(opts, pq.WithDictionaryFor(col, true))
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

// encoder is the part shared by the three datasets.
type encoder struct {
	schema *arrow.Schema
	props  *pq.WriterProperties
	b      *array.RecordBuilder
	dict   dictionaryColumns
	rows   int
	size   int // bytes of the last file
}

func newEncoder(schema *arrow.Schema, o Options, dictionary ...string) (encoder, error) {
	props, err := o.props(dictionary, nil)
	if err != nil {
		return encoder{}, err
	}
	return encoder{schema: schema, props: props, b: array.NewRecordBuilder(memory.DefaultAllocator, schema),
		dict: newDictionaryColumns(schema, dictionary)}, nil
}

// Rows is the number of rows buffered.
func (e *encoder) Rows() int { return e.rows }

// WriteTo writes the buffered rows as one Parquet file and empties the
// encoder. It writes nothing and returns 0 when no rows are buffered.
func (e *encoder) WriteTo(w io.Writer) (int64, error) {
	if e.rows == 0 {
		return 0, nil
	}
	rec := e.b.NewRecordBatch()
	defer rec.Release()
	e.rows = 0
	// The builders start empty again: size them for a batch like this
	// one, so the next grows no buffer value by value (a shard writes
	// batches of similar sizes, one after another).
	for i, col := range rec.Columns() {
		reserveLike(e.b.Field(i), col, maxReserve)
	}
	out := e.dict.apply(rec)
	defer out.Release()
	n, err := write(w, e.dict.schema, e.props, out)
	e.size = int(n)
	return n, err
}

// maxReserve bounds the rows reserveLike sizes for, so one huge batch
// does not keep its buffers' size for the encoder's life.
const maxReserve = 128 << 10

// reserveLike sizes b for as many values as a holds, at most limit (and
// the bytes of as many values, for strings), and likewise the keys and
// items of a map.
func reserveLike(b array.Builder, a arrow.Array, limit int) {
	n := min(a.Len(), limit)
	b.Reserve(n)
	perValue := func(bytes int) int { return bytes / max(a.Len(), 1) * n }
	switch b := b.(type) {
	case *array.StringBuilder:
		b.ReserveData(perValue(len(a.(*array.String).ValueBytes())))
	case *array.BinaryBuilder:
		b.ReserveData(perValue(len(a.(*array.Binary).ValueBytes())))
	case *array.MapBuilder:
		m := a.(*array.Map)
		entries := min(m.Keys().Len(), limit*max(m.Keys().Len()/max(a.Len(), 1), 1))
		reserveLike(b.KeyBuilder(), m.Keys(), entries)
		reserveLike(b.ItemBuilder(), m.Items(), entries)
	}
}

// write writes rec as one Parquet file with props, returning the bytes
// written.
func write(w io.Writer, schema *arrow.Schema, props *pq.WriterProperties, rec arrow.RecordBatch) (int64, error) {
	cw := &countingWriter{w: w}
	fw, err := pqarrow.NewFileWriter(schema, cw, props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		return cw.n, fmt.Errorf("parquet: %w", err)
	}
	if err := fw.Write(rec); err != nil {
		fw.Close()
		return cw.n, fmt.Errorf("parquet: write %d rows: %w", rec.NumRows(), err)
	}
	if err := fw.Close(); err != nil {
		return cw.n, fmt.Errorf("parquet: close: %w", err)
	}
	return cw.n, nil
}

// Bytes is WriteTo into a new buffer.
func (e *encoder) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(e.size + e.size/8) // the last file's size, and some
	_, err := e.WriteTo(&buf)
	return buf.Bytes(), err
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
	encoder
	sketch []byte
}

// NewWindows returns an empty windows encoder.
func NewWindows(o Options) (*Windows, error) {
	e, err := newEncoder(datasets.Windows, o, dictionary["windows"]...)
	return &Windows{encoder: e}, err
}

// Append buffers one closed window.
func (e *Windows) Append(w *windows.Window) {
	f := e.b.Fields()
	f[0].(*array.StringBuilder).Append(w.Spec.Name)
	f[1].(*array.TimestampBuilder).Append(arrow.Timestamp(w.Start))
	f[2].(*array.TimestampBuilder).Append(arrow.Timestamp(w.End))
	f[3].(*array.StringBuilder).Append(w.DeviceID)
	f[4].(*array.StringBuilder).Append(w.Metric)
	f[5].(*array.Int64Builder).Append(w.Count)
	f[6].(*array.Float64Builder).Append(w.Sum)
	f[7].(*array.Float64Builder).Append(w.Min)
	f[8].(*array.Float64Builder).Append(w.Max)
	f[9].(*array.Float64Builder).Append(w.Mean)
	f[10].(*array.Float64Builder).Append(w.Stddev())
	f[11].(*array.Float64Builder).Append(w.M2)
	f[12].(*array.Float64Builder).Append(w.First)
	f[13].(*array.TimestampBuilder).Append(arrow.Timestamp(w.FirstTS))
	f[14].(*array.Float64Builder).Append(w.Last)
	f[15].(*array.TimestampBuilder).Append(arrow.Timestamp(w.LastTS))
	if w.Sketch != nil {
		f[16].(*array.Float64Builder).Append(w.Quantile(0.5))
		f[17].(*array.Float64Builder).Append(w.Quantile(0.9))
		f[18].(*array.Float64Builder).Append(w.Quantile(0.99))
		e.sketch = e.sketch[:0]
		w.Sketch.Encode(&e.sketch, false)
		f[19].(*array.BinaryBuilder).Append(e.sketch)
	} else {
		for _, i := range []int{16, 17, 18, 19} {
			f[i].AppendNull()
		}
	}
	e.rows++
}

// Alerts encodes the alerts dataset (datasets.Alerts).
type Alerts struct{ encoder }

// NewAlerts returns an empty alerts encoder.
func NewAlerts(o Options) (*Alerts, error) {
	e, err := newEncoder(datasets.Alerts, o, dictionary["alerts"]...)
	return &Alerts{e}, err
}

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
type Raw struct{ encoder }

// NewRaw returns an empty raw encoder.
func NewRaw(o Options) (*Raw, error) {
	e, err := newEncoder(datasets.Raw, o, dictionary["raw"]...)
	return &Raw{e}, err
}

// Append buffers one decoded record with where it came from.
func (e *Raw) Append(r *schemas.Record, arrival int64, shard, seq string) {
	f := e.b.Fields()
	f[0].(*array.StringBuilder).BinaryBuilder.Append(r.DeviceID)
	f[1].(*array.TimestampBuilder).Append(arrow.Timestamp(r.Time))
	appendOptionalInt(f[2].(*array.Int64Builder), r.Seq, r.Seq >= 0)
	mb := f[3].(*array.MapBuilder)
	mb.Append(true)
	keys, vals := mb.KeyBuilder().(*array.StringBuilder), mb.ItemBuilder().(*array.Float64Builder)
	for _, m := range r.Metrics {
		keys.BinaryBuilder.Append(m.Name)
		vals.Append(m.Value)
	}
	f[4].(*array.TimestampBuilder).Append(arrow.Timestamp(arrival))
	f[5].(*array.StringBuilder).Append(shard)
	f[6].(*array.StringBuilder).Append(seq)
	appendOptionalInt(f[7].(*array.Int64Builder), int64(r.Reading), r.Reading >= 0)
	e.rows++
}
