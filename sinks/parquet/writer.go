package parquet

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// A columnWriter writes the row groups of the raw and windows datasets'
// files column by column, as pqarrow.FileWriter does and to the same
// bytes (TestPinnedBytes), with one difference: each dictionary column's
// dictionary is handed to its column chunk before its indices.
//
// pqarrow, given a dictionary array for a new column chunk, cannot know
// that every value of the dictionary is used, so it finds the used ones
// for the chunk's min/max statistics by hashing every row's index
// (compute.UniqueArray): 6% of the whole service's CPU at 10k devices,
// for device_id, shard_id, window_spec and metric. Our dictionaries hold
// exactly the values their rows use (dictCol, recoder, and
// dictionaryColumns for compaction's files), and a chunk whose encoder
// already holds the array's own dictionary takes its statistics from it
// (a value no row used would only widen them: they would still bound
// the rows).
//
// It writes top-level columns, required or optional, and required maps
// whose keys and values are top-level types (the raw dataset's metrics);
// a schema with anything else (the alerts' optional maps) goes through
// pqarrow.FileWriter (directly reports which).
type columnWriter struct {
	wr   *file.Writer
	ctx  context.Context
	defs []int16 // scratch definition levels
	reps []int16 // scratch repetition levels
}

// fileWriter is what write needs of a file writer: pqarrow's or a
// columnWriter.
type fileWriter interface {
	// Write writes rec as one or more row groups (more if it has more
	// rows than the properties allow in one).
	Write(rec arrow.RecordBatch) error
	Close() error
}

// directly reports whether a columnWriter can write schema's columns.
func directly(schema *arrow.Schema) bool {
	for _, f := range schema.Fields() {
		switch t := f.Type.(type) {
		case *arrow.MapType:
			if f.Nullable || !flat(t.KeyType()) || !flat(t.ItemType()) {
				return false
			}
		default:
			if !flat(t) {
				return false
			}
		}
	}
	return true
}

// flat reports whether t is written as one leaf column of its own.
func flat(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.BINARY, arrow.INT32, arrow.INT64, arrow.FLOAT64, arrow.TIMESTAMP, arrow.BOOL:
		return true
	case arrow.DICTIONARY:
		return flat(t.(*arrow.DictionaryType).ValueType)
	}
	return false
}

// newWriter returns the writer of schema's files to w.
func newWriter(schema *arrow.Schema, w io.Writer, props *pq.WriterProperties) (fileWriter, error) {
	if !directly(schema) {
		return pqarrow.NewFileWriter(schema, w, props, pqarrow.NewArrowWriterProperties())
	}
	arrowProps := pqarrow.NewArrowWriterProperties()
	pqschema, err := pqarrow.ToParquet(schema, props, arrowProps)
	if err != nil {
		return nil, err
	}
	meta := make(metadata.KeyValueMetadata, 0)
	md := schema.Metadata()
	for i, k := range md.Keys() {
		meta.Append(k, md.Values()[i])
	}
	wr, err := file.NewParquetWriterWithError(w, pqschema.Root(), file.WithWriterProps(props), file.WithWriteMetadata(meta))
	if err != nil {
		return nil, err
	}
	return &columnWriter{wr: wr, ctx: pqarrow.NewArrowWriteContext(context.Background(), &arrowProps)}, nil
}

func (c *columnWriter) Write(rec arrow.RecordBatch) error {
	rows := c.wr.Properties().MaxRowGroupLength()
	n := rec.NumRows()
	if n <= rows {
		return c.group(rec)
	}
	for off := int64(0); off < n; off += rows {
		part := rec.NewSlice(off, min(off+rows, n))
		err := c.group(part)
		part.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// group writes rec as one row group.
func (c *columnWriter) group(rec arrow.RecordBatch) error {
	rgw, err := c.wr.AppendRowGroupChecked()
	if err != nil {
		return err
	}
	for i, col := range rec.Columns() {
		f := rec.Schema().Field(i)
		if m, ok := col.(*array.Map); ok {
			err = c.writeMap(rgw, m)
		} else {
			err = c.writeLeaf(rgw, col, f.Nullable)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return rgw.Close()
}

// writeLeaf writes a top-level column.
func (c *columnWriter) writeLeaf(rgw file.SerialRowGroupWriter, col arrow.Array, nullable bool) error {
	cw, err := rgw.NextColumn()
	if err != nil {
		return err
	}
	var defs []int16
	if nullable {
		defs = c.levels(&c.defs, col.Len())
		for i := range defs {
			defs[i] = 0
			if col.IsValid(i) {
				defs[i] = 1
			}
		}
	}
	if d, ok := col.(*array.Dictionary); ok {
		if err := seedDictionary(cw, d); err != nil {
			return err
		}
	}
	return pqarrow.WriteArrowToColumn(c.ctx, cw, col, defs, nil, nullable)
}

// writeMap writes a required map's keys and values columns: a row with
// no entries is one level of definition 0; an entry's key is defined at
// 1, its value at 1 too, or at 2 where the map's values may be null and
// this one is not; a row's entries after its first repeat at 1.
func (c *columnWriter) writeMap(rgw file.SerialRowGroupWriter, m *array.Map) error {
	nullable := m.DataType().(*arrow.MapType).ItemField().Nullable
	n := m.Len()
	var first, last int64
	if n > 0 {
		first, _ = m.ValueOffsets(0)
		_, last = m.ValueOffsets(n - 1)
	}
	levels := int(last-first) + n - countFull(m) // an empty row has one level
	defs, reps := c.levels(&c.defs, levels), c.levels(&c.reps, levels)
	items := m.Items()
	for pass, child := range []arrow.Array{m.Keys(), items} {
		cw, err := rgw.NextColumn()
		if err != nil {
			return err
		}
		l := 0
		for i := range n {
			s, e := m.ValueOffsets(i)
			if s == e {
				defs[l], reps[l] = 0, 0
				l++
				continue
			}
			for j := s; j < e; j++ {
				defs[l], reps[l] = 1, 1
				if pass == 1 && nullable && items.IsValid(int(j)) {
					defs[l] = 2
				}
				if j == s {
					reps[l] = 0
				}
				l++
			}
		}
		values := array.NewSlice(child, first, last)
		err = pqarrow.WriteArrowToColumn(c.ctx, cw, values, defs[:l], reps[:l], pass == 1 && nullable)
		values.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// countFull is the number of m's rows with at least one entry.
func countFull(m *array.Map) int {
	full := 0
	for i := range m.Len() {
		if s, e := m.ValueOffsets(i); e > s {
			full++
		}
	}
	return full
}

// levels returns (*buf)[:n], grown if need be.
func (c *columnWriter) levels(buf *[]int16, n int) []int16 {
	if cap(*buf) < n {
		*buf = make([]int16, n, n+n/4)
	}
	return (*buf)[:n]
}

// dictSeed is what seedDictionary needs of a dictionary column's encoder
// (arrow-go's encoding.DictEncoder, an internal package).
type dictSeed interface {
	PutDictionary(arrow.Array) error
	NumEntries() int
}

// seedDictionary hands d's dictionary to the new column chunk cw's
// encoder: pqarrow then finds the chunk's dictionary is the array's
// own, and takes the chunk's statistics from the dictionary instead of
// hashing every row (see columnWriter). A column the properties do not
// dictionary-encode is left alone (pqarrow writes its values).
func seedDictionary(cw file.ColumnChunkWriter, d *array.Dictionary) error {
	if cw.CurrentEncoder().Encoding() != pq.Encodings.PlainDict {
		return nil
	}
	enc, ok := cw.CurrentEncoder().(dictSeed)
	if !ok {
		return errors.New("dictionary encoder cannot be seeded")
	}
	dict := d.Dictionary()
	if err := enc.PutDictionary(dict); err != nil {
		return err
	}
	if enc.NumEntries() != dict.Len() {
		return fmt.Errorf("dictionary of %d values has %d distinct", dict.Len(), enc.NumEntries())
	}
	return nil
}

func (c *columnWriter) Close() error { return c.wr.Close() }
