package word

import (
	"bytes"
	"testing"
)

// TestPrefixOf holds the masked compare equal to bytes.HasPrefix for
// every key length up to 17 against buffers that differ at each position.
func TestPrefixOf(t *testing.T) {
	base := []byte(`,"flow_lpm":3.2,"temp_c":4.1}......`)
	for n := 0; n <= 17; n++ {
		k := Make(base[:n])
		for at := 0; at < 20; at++ {
			b := bytes.Clone(base)
			b[at] ^= 0x20
			for _, buf := range [][]byte{base, b} {
				want := n <= 16 && bytes.HasPrefix(buf, base[:n])
				if got := k.PrefixOf(buf); got != want {
					t.Fatalf("key %q, buffer %q: PrefixOf %v, want %v", base[:n], buf, got, want)
				}
			}
		}
	}
}

func TestMask(t *testing.T) {
	for n, want := range []uint64{0, 0xff, 0xffff, 0xffffff, 0xffffffff, 0xffffffffff, 0xffffffffffff, 0xffffffffffffff, ^uint64(0)} {
		if got := Mask(n); got != want {
			t.Errorf("Mask(%d) = %#x, want %#x", n, got, want)
		}
	}
}
