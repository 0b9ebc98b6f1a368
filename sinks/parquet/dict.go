package parquet

import (
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// dictionaryColumns turns an encoder's dictionary-encoded string columns
// into Arrow dictionary arrays before they are written: pqarrow then
// writes each column chunk's dictionary page from the array's dictionary
// and its indices as they are. Given plain strings, arrow-go's dictionary
// encoder hashes every value and allocates for each (a closure in its
// memo table): two or three allocations a row, and a third of a windows
// file's encoding time (benchmarks/RESULTS.md). The indices follow first
// appearance, so the bytes stay a function of the rows.
//
// The raw and windows encoders assign the indices as rows arrive
// (dictCol, columns.go); the alerts encoder converts its builders'
// strings here. Compaction's files (Encode) do not go this way: they
// have small row groups, each of which would carry the whole dictionary.
type dictionaryColumns struct {
	schema *arrow.Schema // the dataset's, with those columns as dictionaries
	cols   []int
	index  map[string]int32
}

var dictType = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}

func newDictionaryColumns(schema *arrow.Schema, names []string) dictionaryColumns {
	fields := schema.Fields()
	var cols []int
	for i, f := range fields {
		for _, n := range names {
			if f.Name == n && f.Type.ID() == arrow.STRING {
				fields[i].Type = dictType
				cols = append(cols, i)
			}
		}
	}
	md := schema.Metadata()
	return dictionaryColumns{schema: arrow.NewSchema(fields, &md), cols: cols, index: map[string]int32{}}
}

// apply returns rec with the dictionary columns as dictionary arrays;
// the caller releases it.
func (d *dictionaryColumns) apply(rec arrow.RecordBatch) arrow.RecordBatch {
	cols := make([]arrow.Array, rec.NumCols())
	copy(cols, rec.Columns())
	var made []arrow.Array
	for _, i := range d.cols {
		a := d.encode(rec.Column(i).(*array.String))
		cols[i] = a
		made = append(made, a)
	}
	out := array.NewRecordBatch(d.schema, cols, rec.NumRows())
	for _, a := range made {
		a.Release() // out holds them
	}
	return out
}

func (d *dictionaryColumns) encode(a *array.String) arrow.Array {
	n := a.Len()
	clear(d.index)
	indices := memory.NewResizableBuffer(memory.DefaultAllocator)
	indices.Resize(n * arrow.Int32SizeBytes)
	idx := arrow.Int32Traits.CastFromBytes(indices.Bytes())
	values := array.NewStringBuilder(memory.DefaultAllocator)
	defer values.Release()
	for i := range n {
		if a.IsNull(i) {
			idx[i] = 0
			continue
		}
		v := a.Value(i) // views a's bytes: looked up, not kept
		k, ok := d.index[v]
		if !ok {
			k = int32(len(d.index))
			d.index[strings.Clone(v)] = k
			values.Append(v)
		}
		idx[i] = k
	}
	dict := values.NewArray()
	defer dict.Release()
	// The same nulls: a's validity bitmap, moved to offset 0 if a is a
	// slice.
	var validity *memory.Buffer
	if a.NullN() > 0 {
		src := a.Data().Buffers()[0]
		if off := a.Data().Offset(); off == 0 {
			validity = src
			validity.Retain()
		} else {
			validity = memory.NewResizableBuffer(memory.DefaultAllocator)
			validity.Resize(int(bitutil.BytesForBits(int64(n))))
			bitutil.CopyBitmap(src.Bytes(), off, n, validity.Bytes(), 0)
		}
		defer validity.Release()
	}
	data := array.NewData(arrow.PrimitiveTypes.Int32, n, []*memory.Buffer{validity, indices}, nil, a.NullN(), 0)
	defer data.Release()
	indices.Release()
	ia := array.MakeFromData(data)
	defer ia.Release()
	return array.NewDictionaryArray(dictType, ia, dict)
}
