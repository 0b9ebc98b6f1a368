package journal

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestStateCompression(t *testing.T) {
	state := bytes.Repeat([]byte("keg-0042 flow_lpm \x00\x00\x00\x00\x00\x00\x00\x00"), 1000)
	stored := CompressState(state)
	if !bytes.HasPrefix(stored, s2Magic) || len(stored) >= len(state)/10 {
		t.Fatalf("stored %d bytes for %d", len(stored), len(state))
	}
	got, err := DecompressState(stored)
	if err != nil || !bytes.Equal(got, state) {
		t.Fatalf("round trip: %v", err)
	}
	// The scratch buffer is reused, the stored bytes are not: the store
	// may keep them.
	first, scratch := compressState(state, nil)
	second, scratch2 := compressState(state[:len(state)/2], scratch)
	if &scratch[0] != &scratch2[0] || !bytes.Equal(first, stored) {
		t.Fatal("scratch not reused, or the first state changed by the second")
	}
	if got, err := DecompressState(second); err != nil || !bytes.Equal(got, state[:len(state)/2]) {
		t.Fatalf("second state: %v", err)
	}
	// State stored before compression starts with a length (a uvarint),
	// never with a magic number, and loads as it is.
	legacy := append([]byte{56}, state...)
	if got, err := DecompressState(legacy); err != nil || !bytes.Equal(got, legacy) {
		t.Fatalf("uncompressed state: %v", err)
	}
	// State stored zstd-compressed, as before S2, still loads.
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if got, err := DecompressState(enc.EncodeAll(state, nil)); err != nil || !bytes.Equal(got, state) {
		t.Fatalf("zstd state: %v", err)
	}
	// A damaged compressed state is an error, not a silent empty state.
	if _, err := DecompressState(stored[:len(stored)/2]); err == nil {
		t.Fatal("truncated state decompressed without an error")
	}
	flipped := bytes.Clone(stored)
	flipped[len(flipped)-3] ^= 0x40
	if _, err := DecompressState(flipped); err == nil {
		t.Fatal("damaged state decompressed without an error")
	}
	if _, err := DecompressState(stored[:6]); err == nil {
		t.Fatal("state cut in its header decompressed without an error")
	}
}
