// Package wire is the byte format of tapline's state snapshots: varints,
// IEEE-754 floats and length-prefixed strings, written in a fixed order
// by each owner of state. It is deliberately dumb: the owners decide what
// a snapshot holds, and equal state always encodes to equal bytes.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Writer appends values to a buffer.
type Writer struct{ B []byte }

// Uint appends an unsigned varint.
func (w *Writer) Uint(v uint64) { w.B = binary.AppendUvarint(w.B, v) }

// Int appends a signed (zig-zag) varint.
func (w *Writer) Int(v int64) { w.B = binary.AppendVarint(w.B, v) }

// Float appends the 8 bytes of v.
func (w *Writer) Float(v float64) { w.B = binary.LittleEndian.AppendUint64(w.B, math.Float64bits(v)) }

// Bool appends 0 or 1.
func (w *Writer) Bool(v bool) {
	if v {
		w.B = append(w.B, 1)
	} else {
		w.B = append(w.B, 0)
	}
}

// String appends a length-prefixed string.
func (w *Writer) String(s string) {
	w.Uint(uint64(len(s)))
	w.B = append(w.B, s...)
}

// Bytes appends a length-prefixed byte slice.
func (w *Writer) Bytes(b []byte) {
	w.Uint(uint64(len(b)))
	w.B = append(w.B, b...)
}

// ErrCorrupt is returned for a truncated or malformed snapshot.
var ErrCorrupt = errors.New("wire: snapshot truncated or corrupt")

// Reader consumes values in the order they were written. The first
// failure sticks: check Err once at the end.
type Reader struct {
	B   []byte
	err error
}

// Err returns the first failure, or nil.
func (r *Reader) Err() error { return r.err }

// Fail records a failure (for example a value out of range).
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	r.B = nil
}

// Uint reads an unsigned varint.
func (r *Reader) Uint() uint64 {
	v, n := binary.Uvarint(r.B)
	if n <= 0 {
		r.Fail("bad varint")
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Len reads a count and checks it against what the rest of the input can
// hold, at least min bytes per element, so corrupt input cannot make the
// reader allocate without bound.
func (r *Reader) Len(min int) int {
	v := r.Uint()
	if min < 1 {
		min = 1
	}
	if v > uint64(len(r.B)/min) {
		r.Fail("count %d exceeds the remaining input", v)
		return 0
	}
	return int(v)
}

// Int reads a signed varint.
func (r *Reader) Int() int64 {
	v, n := binary.Varint(r.B)
	if n <= 0 {
		r.Fail("bad varint")
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Float reads 8 bytes.
func (r *Reader) Float() float64 {
	if len(r.B) < 8 {
		r.Fail("short float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.B))
	r.B = r.B[8:]
	return v
}

// Bool reads 0 or 1.
func (r *Reader) Bool() bool {
	if len(r.B) < 1 || r.B[0] > 1 {
		r.Fail("bad bool")
		return false
	}
	v := r.B[0] == 1
	r.B = r.B[1:]
	return v
}

// String reads a length-prefixed string.
func (r *Reader) String() string { return string(r.Bytes()) }

// Bytes reads a length-prefixed byte slice; it aliases the input.
func (r *Reader) Bytes() []byte {
	n := r.Len(1)
	if r.err != nil {
		return nil
	}
	b := r.B[:n:n]
	r.B = r.B[n:]
	return b
}

// Open starts a section whose length is written before it (4 bytes,
// little-endian), so a reader can skip a part it cannot interpret:
// write the section, then Close with the mark Open returned.
func (w *Writer) Open() int {
	w.B = append(w.B, 0, 0, 0, 0)
	return len(w.B)
}

// Close ends the section begun at mark.
func (w *Writer) Close(mark int) {
	binary.LittleEndian.PutUint32(w.B[mark-4:], uint32(len(w.B)-mark))
}

// Section returns a Reader over the next section and moves past it.
func (r *Reader) Section() Reader {
	if r.err != nil {
		return Reader{err: r.err}
	}
	if len(r.B) < 4 {
		r.err = ErrCorrupt
		return Reader{err: r.err}
	}
	n := binary.LittleEndian.Uint32(r.B)
	if uint64(n) > uint64(len(r.B)-4) {
		r.err = ErrCorrupt
		return Reader{err: r.err}
	}
	s := Reader{B: r.B[4 : 4+n]}
	r.B = r.B[4+n:]
	return s
}
