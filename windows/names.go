package windows

import "encoding/binary"

// nameKey is an interned metric name in a form the hot path compares with
// two masked word compares instead of a call to memequal: the name's
// first 16 bytes as two words and the masks of the name's bytes in them.
type nameKey struct {
	w0, w1 uint64
	m0, m1 uint64
	n      int
}

func makeNameKey(name string) nameKey {
	if len(name) > 16 {
		// quick never matches (w0 has bits outside m0): compare in full.
		return nameKey{w0: 1, n: len(name)}
	}
	var b [16]byte
	copy(b[:], name)
	return nameKey{
		w0: binary.LittleEndian.Uint64(b[:8]), w1: binary.LittleEndian.Uint64(b[8:]),
		m0: lowBytes(min(len(name), 8)), m1: lowBytes(max(len(name)-8, 0)),
		n: len(name),
	}
}

// quick reports whether name equals the key's name, for names of up to
// 16 bytes that are slices of a longer buffer (the decoder's names are
// slices of the record, which continues past them). It loads 16 bytes and
// masks off those past the name. false means "not equal" only when
// len(name) <= 16 and cap(name) >= 16; otherwise compare in full.
func (k *nameKey) quick(name []byte) bool {
	return len(name) == k.n && cap(name) >= 16 &&
		binary.LittleEndian.Uint64(name[:8])&k.m0 == k.w0 &&
		binary.LittleEndian.Uint64(name[8:16])&k.m1 == k.w1
}

// lowBytes masks the low n bytes of a word (n in 0..8).
func lowBytes(n int) uint64 {
	if n >= 8 {
		return ^uint64(0)
	}
	return uint64(1)<<(8*uint(n)) - 1
}
