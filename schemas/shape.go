package schemas

import (
	"encoding/binary"
	"math"
)

var le = binary.LittleEndian

// Shapes: a device sends the same record again and again with only the
// values changed. The Decoder remembers the structure of the last few
// records it accepted (their shapes) and decodes a record that has one of
// them by comparing the bytes between values and parsing only the values:
// keys are not scanned byte by byte, metric names not validated and not
// checked for duplicates again, because they equal the names of a record
// that passed those checks.
//
// A shape is the literal bytes before each value (braces, keys, colons,
// commas and whitespace, exactly as sent), what each value is, and the
// literal after the last one. Values are parsed as the full decoder
// parses them (plain numbers by an inline copy of its fast path, the rest
// by its own functions), so a record that matches a shape decodes to what
// the full decoder would return. Anything else, including every invalid
// value, goes to the full decoder, which reports the error; a differential
// fuzz target (FuzzShape) holds the two paths equal.

// maxShapes is how many shapes a Decoder remembers: enough for the few
// firmware versions and device kinds that feed one shard.
const maxShapes = 4

// maxShapeValues bounds the values of a record that is remembered as a
// shape; larger records always take the full decoder.
const maxShapeValues = 64

type valueKind uint8

const (
	valDevice valueKind = iota
	valTS
	valSeq
	valMetric  // a number: top level or under "metrics"
	valIgnored // a top-level field that is not a number
	valNone    // not recorded (the "metrics" object: its members are)
)

// value is where the full decoder found a value, recorded so an accepted
// record can become a shape. No pointers, so recording one is a plain
// store: the k-th valMetric's name is the record's k-th metric name.
type value struct {
	start, end uint32
	kind       valueKind
}

type shape struct {
	buf    []byte // literals and metric names, with 16 bytes of padding
	fields []field
	tail   [2]uint32 // buf offsets of the literal after the last value
}

type field struct {
	// The literal's first 16 bytes as words and the masks of its bytes
	// in them, for literals of up to 16 bytes (most: a comma and a key).
	w0, w1, m0, m1 uint64
	lit            [2]uint32 // buf offsets of the literal before the value
	kind           valueKind
	nameAt         [2]uint32
	name           []byte // valMetric: buf[nameAt[0]:nameAt[1]], with 16 bytes of capacity at least
}

type shapeResult uint8

const (
	shapeMismatch shapeResult = iota // the record has another shape
	shapeInvalid                     // the shape matched so far, a value is bad
	shapeDecoded
)

// The shape path pays for itself only while most records match a shape
// on the first try or so: a failed attempt parses values up to the first
// literal that differs, and a record that matches no shape is decoded in
// full and learned after up to four failed attempts. When a window of
// records wasted more than about one and a half attempts per record
// (a record of no known shape counting as five), which a shard whose
// records come in more shapes than are remembered does, the decoder
// skips shapes for a while and decodes everything in full, as fast as
// before shapes existed.
const (
	shapeWindow    = 256     // records per verdict
	shapeMaxWaste  = 384     // wasted attempts per window before backing off
	shapeMissWaste = 5       // a record of no known shape
	shapeBackOff   = 1 << 16 // records decoded in full after a bad window (a minute of a busy shard)
)

// decodeShapes tries the remembered shapes, most recently matched first,
// and keeps the shape path's accounts.
func (d *Decoder) decodeShapes(data []byte, refMs int64) bool {
	d.window++
	hit := false
	for k := range d.nshapes {
		s := (d.lastShape + k) % d.nshapes
		res := d.decodeShape(&d.shapes[s], data, refMs)
		if res == shapeDecoded {
			d.lastShape = s
			d.shapeHits++
			hit = true
			break
		}
		d.waste++
		if res == shapeInvalid {
			break
		}
	}
	if !hit {
		d.waste += shapeMissWaste
	}
	if d.window == shapeWindow {
		if d.waste > shapeMaxWaste {
			d.shapeOff = shapeBackOff
		}
		d.window, d.waste = 0, 0
	}
	return hit
}

// decodeShape decodes data if it has shape s.
func (d *Decoder) decodeShape(s *shape, data []byte, refMs int64) shapeResult {
	r := &d.rec
	r.DeviceID, r.Time, r.Seq, r.Metrics = nil, 0, -1, r.Metrics[:0]
	d.data, d.synErr, d.semErr = data, nil, nil
	i := 0
	for k := range s.fields {
		f := &s.fields[k]
		n := int(f.lit[1] - f.lit[0])
		if n <= 16 && len(data)-i >= 16 {
			if le.Uint64(data[i:])&f.m0 != f.w0 || le.Uint64(data[i+8:])&f.m1 != f.w1 {
				return shapeMismatch
			}
		} else if !hasLiteral(data, i, s.buf[f.lit[0]:f.lit[1]]) {
			return shapeMismatch
		}
		i += n
		if i >= len(data) {
			return shapeInvalid
		}
		c := data[i]
		number := c == '-' || c >= '0' && c <= '9'
		switch f.kind {
		case valMetric:
			if !number {
				// NaN, Infinity, or not a number: the full decoder
				// decides what it is.
				return shapeInvalid
			}
			// number's fast path, copied inline: as a call (Go keeps
			// no registers across calls) it cost the loop 5-11 ns a
			// record. FuzzShape holds the copy equal to number.
			j := i
			if c == '-' {
				j++
			}
			from := j
			var mant uint64
			for j < len(data) && data[j]-'0' <= 9 {
				mant = mant*10 + uint64(data[j]-'0')
				j++
			}
			digits, frac := j-from, 0
			if j < len(data) && data[j] == '.' {
				j++
				for j < len(data) && data[j]-'0' <= 9 {
					mant = mant*10 + uint64(data[j]-'0')
					j++
					frac++
				}
			}
			var v float64
			if digits == 0 || digits > 1 && data[from] == '0' || frac == 0 && data[j-1] == '.' ||
				digits+frac > 15 || j < len(data) && numberGoesOn(data[j]) {
				var ok bool
				if v, ok, j = d.number(i); !ok || d.synErr != nil {
					return shapeInvalid
				}
			} else {
				v = float64(mant)
				if frac > 0 {
					v /= pow10[frac]
				}
				if c == '-' {
					v = -v
				}
			}
			r.Metrics = append(r.Metrics, Metric{Name: f.name, Value: v})
			i = j
		case valDevice:
			if c != '"' {
				return shapeInvalid
			}
			id, j := d.str(i)
			if d.synErr != nil || d.class&charDevice == 0 || len(id) > MaxIDLen {
				return shapeInvalid
			}
			r.DeviceID, i = id, j
		case valTS:
			if ms, j, ok := d.whole(i); ok && ms <= maxTime && (refMs <= 0 || ms <= refMs+d.skewMs) {
				r.Time, i = ms, j
			} else {
				i = d.ts(i, refMs)
			}
		case valSeq:
			if n, j, ok := d.whole(i); ok && n <= 1<<53 {
				r.Seq, i = n, j
			} else {
				i = d.seq(i)
			}
		case valIgnored:
			if number || c == 'N' || c == 'I' {
				return shapeInvalid // a number here would be a metric
			}
			i = d.skip(i, 0)
		}
		if d.synErr != nil || d.semErr != nil {
			return shapeInvalid
		}
	}
	tail := s.buf[s.tail[0]:s.tail[1]]
	if len(data)-i != len(tail) || string(data[i:]) != string(tail) {
		return shapeMismatch
	}
	return shapeDecoded
}

// hasLiteral reports whether data continues at i with lit. Literals are
// short (a comma, a key, a colon), so it compares words, the first and
// last eight bytes overlapping, instead of calling memequal.
func hasLiteral(data []byte, i int, lit []byte) bool {
	n := len(lit)
	if len(data)-i < n {
		return false
	}
	b := data[i : i+n]
	switch {
	case n >= 8:
		for k := 0; k+8 < n; k += 8 {
			if le.Uint64(b[k:]) != le.Uint64(lit[k:]) {
				return false
			}
		}
		// the last eight, overlapping the ones compared
		return le.Uint64(b[n-8:]) == le.Uint64(lit[n-8:])
	case n >= 4:
		return le.Uint32(b) == le.Uint32(lit) && le.Uint32(b[n-4:]) == le.Uint32(lit[n-4:])
	}
	for k := range n {
		if b[k] != lit[k] {
			return false
		}
	}
	return true
}

// learn remembers the shape of the record just accepted by the full
// decoder, replacing the least recently learned one. It reuses the
// replaced shape's memory, so a shard that alternates between a few more
// shapes than maxShapes still does not allocate once warm.
func (d *Decoder) learn(data []byte) {
	if len(d.values) > maxShapeValues || len(data) > math.MaxUint32 {
		return // value offsets are 32 bits
	}
	k := d.nshapes
	if k < maxShapes {
		d.nshapes++
	} else {
		k = d.nextShape
		d.nextShape = (d.nextShape + 1) % maxShapes
	}
	s := &d.shapes[k]
	s.buf, s.fields = s.buf[:0], s.fields[:0]
	prev := 0
	for _, v := range d.values {
		from := uint32(len(s.buf))
		s.buf = append(s.buf, data[prev:v.start]...)
		s.fields = append(s.fields, field{lit: [2]uint32{from, uint32(len(s.buf))}, kind: v.kind})
		prev = int(v.end)
	}
	from := uint32(len(s.buf))
	s.buf = append(s.buf, data[prev:]...)
	s.tail = [2]uint32{from, uint32(len(s.buf))}
	// Names last, then padding, so every name can be loaded 16 bytes at a
	// time (windows compares names that way). The names are sliced once
	// buf has stopped growing.
	m := 0
	for j, v := range d.values {
		if v.kind == valMetric {
			from := uint32(len(s.buf))
			s.buf = append(s.buf, d.rec.Metrics[m].Name...)
			s.fields[j].nameAt = [2]uint32{from, uint32(len(s.buf))}
			m++
		}
	}
	s.buf = append(s.buf, padding[:]...)
	for j := range s.fields {
		f := &s.fields[j]
		if lit := s.buf[f.lit[0]:f.lit[1]]; len(lit) <= 16 {
			var w [16]byte
			copy(w[:], lit)
			f.w0, f.w1 = le.Uint64(w[:8]), le.Uint64(w[8:])
			f.m0, f.m1 = lowBytes(min(len(lit), 8)), lowBytes(max(len(lit)-8, 0))
		}
		if f.kind == valMetric {
			f.name = s.buf[f.nameAt[0]:f.nameAt[1]]
		}
	}
	d.lastShape = k
}

var padding [16]byte

// lowBytes masks the low n bytes of a word (n in 0..8).
func lowBytes(n int) uint64 {
	if n >= 8 {
		return ^uint64(0)
	}
	return uint64(1)<<(8*uint(n)) - 1
}

// whole parses the common form of ts and seq, a non-negative integer of
// up to 15 digits, as an integer. Anything else, including every number
// that is not plain, is for d.ts and d.seq.
func (d *Decoder) whole(i int) (int64, int, bool) {
	data := d.data
	j, n := scanDigits(data, i, 0)
	if digits := j - i; digits == 0 || digits > 15 || digits > 1 && data[i] == '0' {
		return 0, j, false
	}
	if j < len(data) {
		if c := data[j]; c == '.' || numberGoesOn(c) {
			return 0, j, false
		}
	}
	return int64(n), j, true
}
