package windows

import "github.com/tapline/tapline/schemas/word"

// nameKey is an interned metric name in a form the hot path compares with
// two masked word compares instead of a call to memequal.
type nameKey struct {
	w word.Key
	n int
}

func makeNameKey(name string) nameKey { return nameKey{w: word.Make([]byte(name)), n: len(name)} }

// quick reports whether name equals the key's name, for names of up to
// 16 bytes that are slices of a longer buffer (the decoder's names are
// slices of the record, or of its remembered shapes, with at least 16
// bytes of capacity: see schemas.Record). false means "not equal" only
// when len(name) <= 16 and cap(name) >= 16; otherwise compare in full.
func (k *nameKey) quick(name []byte) bool {
	return len(name) == k.n && cap(name) >= 16 && k.w.PrefixOf(name[:16])
}
