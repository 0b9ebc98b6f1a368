// Package word compares short byte strings (up to 16 bytes) with a buffer
// as two masked 8-byte loads instead of a call to memequal: the decoder's
// shape path compares the literals between a record's values this way,
// and the windows compare metric names this way. It is not internal
// because those two packages share no parent below the module root.
package word

import "encoding/binary"

var le = binary.LittleEndian

// Key is up to 16 bytes as two little-endian words and the masks of the
// bytes in them. The zero Key is the empty string.
type Key struct{ w0, w1, m0, m1 uint64 }

// Make returns the Key of b. A b longer than 16 bytes gets a Key that is
// a prefix of nothing (its first word has bits outside its mask): compare
// such strings in full.
func Make(b []byte) Key {
	if len(b) > 16 {
		return Key{w0: 1}
	}
	var w [16]byte
	copy(w[:], b)
	return Key{w0: le.Uint64(w[:8]), w1: le.Uint64(w[8:]), m0: Mask(min(len(b), 8)), m1: Mask(max(len(b)-8, 0))}
}

// PrefixOf reports whether b, which must hold at least 16 bytes, starts
// with the Key's bytes.
func (k *Key) PrefixOf(b []byte) bool {
	_ = b[15]
	return le.Uint64(b)&k.m0 == k.w0 && le.Uint64(b[8:])&k.m1 == k.w1
}

// Mask masks the low n bytes of a word (n in 0..8).
func Mask(n int) uint64 {
	if n >= 8 {
		return ^uint64(0)
	}
	return uint64(1)<<(8*uint(n)) - 1
}
