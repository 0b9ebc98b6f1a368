package schemas

import (
	"encoding/binary"
	"math"

	"github.com/tapline/tapline/schemas/word"
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
	// The literal as words, for literals of up to 16 bytes (most: a comma
	// and a key).
	word   word.Key
	lit    [2]uint32 // buf offsets of the literal before the value
	kind   valueKind
	nameAt [2]uint32
	name   []byte // valMetric: buf[nameAt[0]:nameAt[1]], with 16 bytes of capacity at least
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

// shapeCache is a Decoder's memory of the shapes of recent records and
// the accounts that decide whether trying them pays.
type shapeCache struct {
	shapes [maxShapes]shape
	n      int
	last   int // tried first
	next   int // replaced next once all are in use
	hits   uint64
	window int // records in the current verdict window
	waste  int // failed attempts in it
	off    int // records left to decode in full after a bad window
	spent  int // waste the last record added
}

// refund takes back the waste of the last record: a batched message, which
// no shape is for, says nothing about whether shapes pay.
func (c *shapeCache) refund() {
	c.waste = max(c.waste-c.spent, 0)
	c.spent = 0
}

// decodeShapes tries the remembered shapes, most recently matched first,
// and keeps the shape path's accounts.
func (d *Decoder) decodeShapes(data []byte, refMs int64) bool {
	c := &d.shapes
	before := c.waste
	hit := false
	for k := range c.n {
		s := (c.last + k) % c.n
		res := d.decodeShape(&c.shapes[s], data, refMs)
		if res == shapeDecoded {
			c.last = s
			hit = true
			break
		}
		c.waste++
		if res == shapeInvalid {
			break
		}
	}
	c.tally(hit, before)
	return hit
}

// tally accounts one value the shapes were tried on (hit: one matched;
// before: the waste before the attempts) and gives the verdict at the
// end of a window.
func (c *shapeCache) tally(hit bool, before int) {
	c.window++
	if hit {
		c.hits++
	} else {
		c.waste += shapeMissWaste
	}
	c.spent = c.waste - before
	if c.window == shapeWindow {
		if c.waste > shapeMaxWaste {
			c.off = shapeBackOff
		}
		c.window, c.waste = 0, 0
	}
}

// readingShapes decodes the reading at i into d.rec (its metrics into
// metrics' storage) if it has one of the shapes of recent readings, and
// returns where it ends.
func (d *Decoder) readingShapes(i int, refMs int64, metrics []Metric) (bool, int) {
	c := &d.readingCache
	before := c.waste
	for k := range c.n {
		s := (c.last + k) % c.n
		d.rec = Record{Seq: -1, Reading: -1, Metrics: metrics[:0]}
		res, end := d.matchShape(&c.shapes[s], i, refMs)
		if res == shapeDecoded {
			c.last = s
			c.tally(true, before)
			return true, end
		}
		d.synErr, d.semErr = nil, nil // the full decoder finds them again
		c.waste++
		if res == shapeInvalid {
			break
		}
	}
	c.tally(false, before)
	return false, i
}

// decodeShape decodes data if it has shape s.
func (d *Decoder) decodeShape(s *shape, data []byte, refMs int64) shapeResult {
	d.begin(data)
	res, end := d.matchShape(s, 0, refMs)
	if res == shapeDecoded && end != len(data) {
		return shapeMismatch
	}
	return res
}

// matchShape decodes the value at i of d.data into d.rec if it has shape
// s (the whole record, or a reading of a batch), and returns where it
// ends.
func (d *Decoder) matchShape(s *shape, i int, refMs int64) (shapeResult, int) {
	r, data := &d.rec, d.data
	for k := range s.fields {
		f := &s.fields[k]
		n := int(f.lit[1] - f.lit[0])
		if n <= 16 && len(data)-i >= 16 {
			if !f.word.PrefixOf(data[i:]) {
				return shapeMismatch, i
			}
		} else if !hasLiteral(data, i, s.buf[f.lit[0]:f.lit[1]]) {
			return shapeMismatch, i
		}
		i += n
		if i >= len(data) {
			return shapeInvalid, i
		}
		c := data[i]
		number := c == '-' || c >= '0' && c <= '9'
		switch f.kind {
		case valMetric:
			if !number {
				// NaN, Infinity, or not a number: the full decoder
				// decides what it is.
				return shapeInvalid, i
			}
			// number's fast path, copied inline: as a call (Go keeps
			// no registers across calls) it slowed the loop measurably
			// (benchmarks/RESULTS.md). FuzzShape holds the copy equal
			// to number.
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
					return shapeInvalid, i
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
				return shapeInvalid, i
			}
			id, j := d.str(i)
			if d.synErr != nil || d.class&charDevice == 0 || len(id) > MaxIDLen {
				return shapeInvalid, i
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
				return shapeInvalid, i // a number here would be a metric
			}
			i = d.skip(i, 0)
		}
		if d.synErr != nil || d.semErr != nil {
			return shapeInvalid, i
		}
	}
	tail := s.buf[s.tail[0]:s.tail[1]]
	if !hasLiteral(data, i, tail) {
		return shapeMismatch, i
	}
	return shapeDecoded, i + len(tail)
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

// learn remembers the shape of a record just accepted by the full
// decoder (its bytes, where the values were, its metrics), replacing the
// least recently learned one. It reuses the replaced shape's memory, so a
// shard that alternates between a few more shapes than maxShapes still
// does not allocate once warm.
func (c *shapeCache) learn(data []byte, values []value, metrics []Metric) {
	if len(values) > maxShapeValues || uint64(len(data)) > math.MaxUint32 {
		return // value offsets are 32 bits
	}
	k := c.n
	if k < maxShapes {
		c.n++
	} else {
		k = c.next
		c.next = (c.next + 1) % maxShapes
	}
	s := &c.shapes[k]
	s.buf, s.fields = s.buf[:0], s.fields[:0]
	prev := 0
	for _, v := range values {
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
	for j, v := range values {
		if v.kind == valMetric {
			from := uint32(len(s.buf))
			s.buf = append(s.buf, metrics[m].Name...)
			s.fields[j].nameAt = [2]uint32{from, uint32(len(s.buf))}
			m++
		}
	}
	s.buf = append(s.buf, padding[:]...)
	for j := range s.fields {
		f := &s.fields[j]
		f.word = word.Make(s.buf[f.lit[0]:f.lit[1]])
		if f.kind == valMetric {
			f.name = s.buf[f.nameAt[0]:f.nameAt[1]]
		}
	}
	c.last = k
}

var padding [16]byte
