package windows

import "encoding/binary"

// nameKey is an interned metric name in a form the hot path can compare
// with two word compares instead of a call to memequal: the name's first
// 16 bytes, zero-padded, and its length.
type nameKey struct {
	w0, w1 uint64
	n      int
}

func makeNameKey(name string) nameKey {
	var b [16]byte
	copy(b[:], name)
	return nameKey{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:]), len(name)}
}

// matches reports whether name equals the key's name. Names from the
// decoder are slices of a record that continues past them (at least the
// closing quote, a colon and a value), so while the capacity allows it
// whole words are loaded and the bytes past the name masked off.
func (k *nameKey) matches(name []byte, full string) bool {
	n := len(name)
	if n != k.n {
		return false
	}
	switch {
	case n <= 8 && cap(name) >= 8:
		return binary.LittleEndian.Uint64(name[:8])&lowBytes(n) == k.w0
	case n <= 16 && cap(name) >= 16:
		return binary.LittleEndian.Uint64(name[:8]) == k.w0 &&
			binary.LittleEndian.Uint64(name[8:16])&lowBytes(n-8) == k.w1
	}
	return full == string(name)
}

// lowBytes masks the low n bytes of a word (n in 0..8).
func lowBytes(n int) uint64 {
	if n >= 8 {
		return ^uint64(0)
	}
	return uint64(1)<<(8*uint(n)) - 1
}
