package parquet

import (
	"slices"
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
// (dictCol, columns.go) and recode them per row group when a file has
// several (recoder, below); the alerts encoder converts its strings here,
// and compaction's Encode a row group at a time, so each row group
// carries only its own rows' values.
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

// apply returns rec (or a slice of it: a row group) with the dictionary
// columns as dictionary arrays; the caller releases it.
func (d *dictionaryColumns) apply(rec arrow.RecordBatch) arrow.RecordBatch {
	return replaced(rec, d.schema, func(i int, c arrow.Array) arrow.Array {
		if !slices.Contains(d.cols, i) {
			return nil
		}
		return d.encode(c.(*array.String))
	})
}

// replaced is rec of schema with each column c that fn gives a new array
// for (nil: c stays) replaced by it; the caller releases it.
func replaced(rec arrow.RecordBatch, schema *arrow.Schema, fn func(i int, c arrow.Array) arrow.Array) arrow.RecordBatch {
	cols := make([]arrow.Array, rec.NumCols())
	var made []arrow.Array
	for i, c := range rec.Columns() {
		cols[i] = c
		if a := fn(i, c); a != nil {
			cols[i] = a
			made = append(made, a)
		}
	}
	out := array.NewRecordBatch(schema, cols, rec.NumRows())
	for _, a := range made {
		a.Release() // out holds them
	}
	return out
}

func (d *dictionaryColumns) encode(a *array.String) arrow.Array {
	clear(d.index)
	values := array.NewStringBuilder(memory.DefaultAllocator)
	defer values.Release()
	indices := indicesOf(a, func(i int) int32 {
		v := a.Value(i) // views a's bytes: looked up, not kept
		k, ok := d.index[v]
		if !ok {
			k = int32(len(d.index))
			d.index[strings.Clone(v)] = k
			values.Append(v)
		}
		return k
	})
	dict := values.NewArray()
	defer dict.Release()
	return dictionaryArray(a, indices, dict)
}

// indicesOf is a new buffer of a's length with each row's dictionary
// index from index, called in row order for the rows that are not null
// (a null's is 0).
func indicesOf(a arrow.Array, index func(i int) int32) *memory.Buffer {
	n := a.Len()
	indices := memory.NewResizableBuffer(memory.DefaultAllocator)
	indices.Resize(n * arrow.Int32SizeBytes)
	idx := arrow.Int32Traits.CastFromBytes(indices.Bytes())
	for i := range n {
		if a.IsNull(i) {
			idx[i] = 0
			continue
		}
		idx[i] = index(i)
	}
	return indices
}

// dictionaryArray is the dictionary array of indices (n int32s, which it
// takes over) into dict, with a's nulls.
func dictionaryArray(a arrow.Array, indices *memory.Buffer, dict arrow.Array) *array.Dictionary {
	n := a.Len()
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

// A file's dictionary columns index one dictionary for all its rows, and
// the writer gives each row group's column chunk the whole of it: a
// windows file of 600k rows over 100k devices carried the 100k device ids
// in each of its five row groups (1.8 MB of the column's 8.8 before
// compression, all of it hashed again by the writer per row group). A
// file of more than one row group is written a row group at a time, each
// with its dictionary columns recoded to the values its rows use, in the
// order they first appear (the bytes stay a function of the rows).

// recoder returns a function that recodes each dictionary column of a
// row group's rows to the values they use (recode), keeping its scratch
// between calls. The caller releases what it returns.
func recoder() func(part arrow.RecordBatch) arrow.RecordBatch {
	var seen []int32
	return func(part arrow.RecordBatch) arrow.RecordBatch {
		return replaced(part, part.Schema(), func(_ int, c arrow.Array) arrow.Array {
			d, ok := c.(*array.Dictionary)
			if !ok {
				return nil
			}
			var a arrow.Array
			a, seen = recode(d, seen)
			return a
		})
	}
}

// recode is d with a dictionary of the values its rows use, in order of
// first use. seen[k] is value k's new index + 1, 0 while unused.
func recode(d *array.Dictionary, seen []int32) (arrow.Array, []int32) {
	values := d.Dictionary().(*array.String)
	if cap(seen) < values.Len() {
		seen = make([]int32, values.Len())
	}
	seen = seen[:values.Len()]
	clear(seen)
	used := array.NewStringBuilder(memory.DefaultAllocator)
	defer used.Release()
	indices := indicesOf(d, func(i int) int32 {
		k := d.GetValueIndex(i)
		if seen[k] == 0 {
			used.Append(values.Value(k))
			seen[k] = int32(used.Len())
		}
		return seen[k] - 1
	})
	dict := used.NewArray()
	defer dict.Release()
	return dictionaryArray(d, indices, dict), seen
}
