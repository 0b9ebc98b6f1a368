package parquet

import (
	"slices"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The raw and windows encoders, a row per record and a row per closed
// window, buffer their rows in Go slices kept from batch to batch, and
// hand them to the Parquet writer as Arrow arrays that view those slices.
// Arrow's builders, which they used before, start every batch with new
// buffers: allocated, zeroed, regrown value by value, then dropped (a
// tenth of the whole service's CPU in BenchmarkServiceThroughput went to
// zeroing fresh memory, most of it theirs). A slice here is truncated
// after each file and refilled in place. The arrays are only read while
// the file is written, and released before the slices are touched again.
// TestPinnedBytes holds the files to the bytes the builders wrote.

// validity is a nullable column's bitmap, in Arrow's layout (bit i of
// byte i/8 set when value i is present).
type validity struct {
	bits  []byte
	n     int
	nulls int
}

func (v *validity) add(present bool) {
	if v.n%8 == 0 {
		v.bits = append(v.bits, 0)
	}
	if present {
		v.bits[v.n/8] |= 1 << (v.n % 8)
	} else {
		v.nulls++
	}
	v.n++
}

// buffer is the bitmap for an array, nil when nothing is null (as
// Arrow's builders leave it: NullN 0).
func (v *validity) buffer() *memory.Buffer {
	if v.nulls == 0 {
		return nil
	}
	return memory.NewBufferBytes(v.bits)
}

func (v *validity) reset(limit int) {
	v.bits = truncate(v.bits, limit/8+1)
	v.n, v.nulls = 0, 0
}

// truncate empties s for the next batch, or drops it if one large batch
// made it larger than limit: a burst does not keep its memory for the
// encoder's life.
func truncate[T any](s []T, limit int) []T {
	if cap(s) > limit {
		return nil
	}
	return s[:0]
}

// push appends x, doubling s when it is full: append grows a large
// slice by a quarter, which for a column of a fresh encoder (a one-off
// file of a million rows) meant copying it over again and again. The
// capacities are powers of two from 256 exactly (slices.Grow would round
// up past them), so a batch of at most maxReserve rows leaves room that
// truncate keeps.
func push[T any](s []T, x T) []T {
	if len(s) == cap(s) {
		grown := make([]T, len(s), max(2*cap(s), 256))
		copy(grown, s)
		s = grown
	}
	return append(s, x)
}

// fixed is a column of 8-byte values: int64, timestamps, float64.
type fixed[T int64 | float64] struct {
	v []T
	validity
}

func (c *fixed[T]) add(x T) { c.v = push(c.v, x) }

// addOptional appends x, or a null (a zero value) when !present.
func (c *fixed[T]) addOptional(x T, present bool) {
	if !present {
		x = 0
	}
	c.v = push(c.v, x)
	c.validity.add(present)
}

func (c *fixed[T]) array(dt arrow.DataType) arrow.Array {
	return makeArray(dt, len(c.v), []*memory.Buffer{c.validity.buffer(), memory.NewBufferBytes(bytesOf(c.v))}, nil, c.nulls)
}

func (c *fixed[T]) reset(limit int) {
	c.v = truncate(c.v, limit)
	c.validity.reset(limit)
}

// varlen is a column of strings or bytes: Arrow's offsets and data.
type varlen struct {
	offsets []int32 // starts with 0
	data    []byte
	validity
}

func addVar[S string | []byte](c *varlen, s S) {
	if len(c.offsets) == 0 {
		c.offsets = append(c.offsets, 0)
	}
	if len(c.data)+len(s) > cap(c.data) {
		c.data = slices.Grow(c.data, max(cap(c.data), len(s)))
	}
	c.data = append(c.data, s...)
	c.offsets = push(c.offsets, int32(len(c.data)))
}

// addOptional appends s, or a null when !present (s is then empty).
func (c *varlen) addOptional(s []byte, present bool) {
	addVar(c, s)
	c.validity.add(present)
}

func (c *varlen) rows() int { return max(len(c.offsets)-1, 0) }

func (c *varlen) array(dt arrow.DataType) arrow.Array {
	if len(c.offsets) == 0 {
		c.offsets = append(c.offsets, 0)
	}
	return makeArray(dt, c.rows(), []*memory.Buffer{c.validity.buffer(), memory.NewBufferBytes(bytesOf(c.offsets)), memory.NewBufferBytes(c.data)}, nil, c.nulls)
}

// reset keeps the data if its rows fit limit; a row's bytes are bounded
// by the inputs (ids of at most 128 bytes, sketches of a few hundred).
func (c *varlen) reset(limit int) {
	c.offsets = truncate(c.offsets, limit+1)
	if c.offsets == nil {
		c.data = nil
	}
	c.data = c.data[:0]
	c.validity.reset(limit)
}

// dictCol is a dictionary-encoded string column (see dictionaryColumns):
// each value's index in the file's dictionary, which lists the values in
// order of first appearance.
//
// The values it has seen are remembered across files (up to
// keptValues), each with the value that followed it last time: a
// device's windows come in the same order of metrics every time, and
// devices in the same order every minute, so most values are predicted
// by the last row's and never hashed, and a device's id is not copied
// and inserted into a map again for every file (a windows file of a
// minute names each device afresh: a map insert and an allocation per
// device per file before).
type dictCol struct {
	idx    []int32 // each row's index in the file's dictionary
	values varlen  // the file's dictionary: value k is values' k-th string

	// Across files, by id (order of first sight):
	ids    map[string]int32
	known  []string
	next   []int32 // the id that followed id k the last time, -1 if none yet
	inFile []int32 // id k's index in the file's dictionary + 1, 0 if not in it
	file   []int32 // the ids in the file's dictionary, in its order
	last   int32   // the last row's id, -1 for none
}

// keptValues bounds the values a dictionary column remembers across
// files: past it, it forgets them at the next file (a file's own values
// are bounded by its rows).
const keptValues = 1 << 17

func newDict() dictCol { return dictCol{ids: map[string]int32{}, last: -1} }

// addDict appends s's index. The last row's value and the one that
// followed it before are compared first; only a value neither predicts is
// looked up.
func addDict[S string | []byte](d *dictCol, s S) {
	k := d.last
	switch {
	case k >= 0 && d.known[k] == string(s):
	case k >= 0 && d.next[k] >= 0 && d.known[d.next[k]] == string(s):
		k = d.next[k]
	default:
		var ok bool
		if k, ok = d.ids[string(s)]; !ok {
			k = int32(len(d.known))
			v := string(s) // a copy if s is a []byte: a view of a payload
			d.ids[v] = k
			d.known = append(d.known, v)
			d.next = append(d.next, -1)
			d.inFile = append(d.inFile, 0)
		}
		if d.last >= 0 {
			d.next[d.last] = k
		}
	}
	d.last = k
	if d.inFile[k] == 0 {
		d.file = append(d.file, k)
		d.inFile[k] = int32(len(d.file))
		addVar(&d.values, d.known[k])
	}
	d.idx = push(d.idx, d.inFile[k]-1)
}

func (d *dictCol) array() arrow.Array {
	ia := makeArray(arrow.PrimitiveTypes.Int32, len(d.idx), []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(d.idx))}, nil, 0)
	defer ia.Release()
	values := d.values.array(arrow.BinaryTypes.String)
	defer values.Release()
	return array.NewDictionaryArray(dictType, ia, values)
}

// reset empties the file; the values seen are kept unless there are more
// than keptValues.
func (d *dictCol) reset(limit int) {
	d.idx = truncate(d.idx, limit)
	d.values.reset(limit)
	for _, k := range d.file {
		d.inFile[k] = 0
	}
	d.file = truncate(d.file, limit)
	if len(d.known) > keptValues {
		clear(d.ids)
		d.known, d.next, d.inFile = d.known[:0], d.next[:0], d.inFile[:0]
		d.last = -1
	}
}

// strMap is a MAP<string, double> column: each row's entries are
// offsets[i]..offsets[i+1] of keys and items.
type strMap struct {
	offsets []int32
	keys    varlen
	items   fixed[float64]
}

func (m *strMap) startRow() {
	if len(m.offsets) == 0 {
		m.offsets = append(m.offsets, 0)
	}
}

func (m *strMap) endRow() { m.offsets = push(m.offsets, int32(len(m.items.v))) }

func (m *strMap) array(dt *arrow.MapType) arrow.Array {
	m.startRow()
	keys := m.keys.array(dt.KeyType())
	defer keys.Release()
	items := m.items.array(dt.ItemType())
	defer items.Release()
	entries := array.NewData(dt.Elem(), len(m.items.v), []*memory.Buffer{nil}, []arrow.ArrayData{keys.Data(), items.Data()}, 0, 0)
	defer entries.Release()
	return makeArray(dt, len(m.offsets)-1, []*memory.Buffer{nil, memory.NewBufferBytes(bytesOf(m.offsets))}, []arrow.ArrayData{entries}, 0)
}

func (m *strMap) reset(limit, entries int) {
	m.offsets = truncate(m.offsets, limit+1)
	m.keys.reset(entries)
	m.items.reset(entries)
}

// bytesOf views s's elements as bytes, for a buffer that shares them.
func bytesOf[T int32 | int64 | float64](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

func makeArray(dt arrow.DataType, n int, bufs []*memory.Buffer, children []arrow.ArrayData, nulls int) arrow.Array {
	data := array.NewData(dt, n, bufs, children, nulls, 0)
	defer data.Release()
	return array.MakeFromData(data)
}
