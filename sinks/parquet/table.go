package parquet

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tapline/tapline/sinks/datasets"
)

// Decode reads a whole file of dataset (raw, windows or alerts) into one
// record batch with the dataset's schema. A file whose columns are not
// exactly the dataset's (another schema version, someone else's file) is
// refused: rewriting it under tapline's schema would change its meaning.
func Decode(ctx context.Context, dataset string, data []byte) (arrow.RecordBatch, error) {
	schema, ok := datasets.ByName[dataset]
	if !ok {
		return nil, fmt.Errorf("parquet: unknown dataset %q", dataset)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	defer pf.Close()
	if v := pf.MetaData().KeyValueMetadata().FindValue(datasets.MetaVersion); v == nil || *v != datasets.Version {
		return nil, fmt.Errorf("parquet: not a %s file of schema version %s", dataset, datasets.Version)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	defer tbl.Release()
	got := tbl.Schema()
	if got.NumFields() != schema.NumFields() {
		return nil, fmt.Errorf("parquet: %d columns, the %s dataset has %d", got.NumFields(), dataset, schema.NumFields())
	}
	cols := make([]arrow.Array, schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, f := range schema.Fields() {
		g := got.Field(i)
		if g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) {
			return nil, fmt.Errorf("parquet: column %d is %s %s, the %s dataset has %s %s", i, g.Name, g.Type, dataset, f.Name, f.Type)
		}
		chunks := tbl.Column(i).Data().Chunks()
		if len(chunks) == 1 {
			chunks[0].Retain()
			cols[i] = chunks[0]
			continue
		}
		if cols[i], err = array.Concatenate(chunks, memory.DefaultAllocator); err != nil {
			return nil, fmt.Errorf("parquet: %s: %w", f.Name, err)
		}
	}
	return array.NewRecordBatch(schema, cols, tbl.NumRows()), nil
}

// Encode writes rec, rows of one dataset in their final order, as one
// file encoded as that dataset's encoder encodes it. sortedBy names the
// columns the rows are sorted by (ascending, nulls first), recorded in
// every row group's metadata for readers that use it. Like an encoder's,
// the bytes are a function of the rows alone.
func Encode(w io.Writer, rec arrow.RecordBatch, o Options, sortedBy ...string) (int64, error) {
	dataset, _ := rec.Schema().Metadata().GetValue(datasets.MetaDataset)
	schema, ok := datasets.ByName[dataset]
	if !ok || !schema.Equal(rec.Schema()) {
		return 0, fmt.Errorf("parquet: Encode wants a record of one of tapline's datasets")
	}
	props, err := o.props(dataset, sorting(schema, sortedBy))
	if err != nil {
		return 0, err
	}
	// The dictionary columns as Arrow dictionaries, a row group at a time
	// (dict.go): given strings, arrow-go's encoder allocates for every
	// value it looks up.
	d := newDictionaryColumns(schema, dictionary[dataset])
	return write(w, d.schema, props, rec, d.apply)
}

// sorting names the columns as Parquet sorting columns: leaf column
// indices, a column's being the number of leaves before it (a map has
// two). Names that are not a column are ignored.
func sorting(schema *arrow.Schema, names []string) []pq.SortingColumn {
	var out []pq.SortingColumn
	for _, name := range names {
		leaf := 0
		for _, f := range schema.Fields() {
			if f.Name == name {
				out = append(out, pq.SortingColumn{ColumnIdx: int32(leaf), NullsFirst: true})
				break
			}
			leaf += leaves(f.Type)
		}
	}
	return out
}

func leaves(t arrow.DataType) int {
	switch t := t.(type) {
	case *arrow.MapType:
		return leaves(t.KeyType()) + leaves(t.ItemType())
	case arrow.NestedType:
		n := 0
		for _, f := range t.Fields() {
			n += leaves(f.Type)
		}
		return n
	}
	return 1
}
