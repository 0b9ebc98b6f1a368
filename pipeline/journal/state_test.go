package journal

import (
	"bytes"
	"testing"
)

func TestStateCompression(t *testing.T) {
	state := bytes.Repeat([]byte("keg-0042 flow_lpm \x00\x00\x00\x00\x00\x00\x00\x00"), 1000)
	stored := CompressState(state)
	if !bytes.HasPrefix(stored, zstdMagic) || len(stored) >= len(state)/10 {
		t.Fatalf("stored %d bytes for %d", len(stored), len(state))
	}
	got, err := DecompressState(stored)
	if err != nil || !bytes.Equal(got, state) {
		t.Fatalf("round trip: %v", err)
	}
	// State stored before compression starts with a length (a uvarint),
	// never with zstd's magic number, and loads as it is.
	legacy := append([]byte{56}, state...)
	if got, err := DecompressState(legacy); err != nil || !bytes.Equal(got, legacy) {
		t.Fatalf("uncompressed state: %v", err)
	}
	// A damaged compressed state is an error, not a silent empty state.
	if _, err := DecompressState(stored[:len(stored)/2]); err == nil {
		t.Fatal("truncated state decompressed without an error")
	}
}
