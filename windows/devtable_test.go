package windows

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestDevTableInsertRemove checks the open-addressing table against a Go
// map through random inserts and removals, with hashes crowded onto a few
// home slots at both ends of the table, so probe runs are long and wrap
// around and backward-shift deletion is exercised.
func TestDevTableInsertRemove(t *testing.T) {
	ids := make([]string, 200)
	hashes := make([]uint64, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%d", i)
		// A few home slots at both ends of the table: long probe runs
		// that wrap around, and tags that differ within a run.
		homes := []uint64{0, 1, 2, ^uint64(0), ^uint64(0) - 1, ^uint64(0) - 2, 1 << 20}
		hashes[i] = homes[i%len(homes)]&0xffffffff | uint64(i%5)<<40
	}
	tbl := newDevTable(func(i uint32) uint64 { return hashes[i] })
	want := map[uint32]bool{}
	find := func(i uint32) bool {
		h := hashes[i]
		for j := h & tbl.mask; ; j = (j + 1) & tbl.mask {
			s := tbl.slots[j]
			if s.idx == 0 {
				return false
			}
			if s.tag == uint32(h>>32) && s.idx-1 == i {
				return true
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := 0; step < 5000; step++ {
		i := uint32(rng.IntN(len(ids)))
		if want[i] {
			tbl.remove(hashes[i], i)
			delete(want, i)
		} else {
			tbl.insert(hashes[i], i)
			want[i] = true
		}
		// every device, after every step: a stranded entry shows at once
		for j := range ids {
			if got := find(uint32(j)); got != want[uint32(j)] {
				t.Fatalf("step %d: device %d present=%v, want %v", step, j, got, want[uint32(j)])
			}
		}
		if tbl.n != len(want) {
			t.Fatalf("step %d: table counts %d, want %d", step, tbl.n, len(want))
		}
	}
}

// TestDeviceLayout: the hot fields of a device share its first two cache
// lines, and devices are whole lines so a slice of them stays aligned.
func TestDeviceLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("laid out for 64-bit platforms, where the service runs")
	}
	var d device
	if size := unsafe.Sizeof(d); size%64 != 0 {
		t.Errorf("device is %d bytes, not a multiple of a cache line", size)
	}
	if end := unsafe.Offsetof(d.inl) + unsafe.Sizeof(d.inl); end > 128 {
		t.Errorf("device's inline slots end at byte %d, past its second line", end)
	}
}

// TestTagged: the guess Prefetch uses finds each entry by its hash, and
// nothing for a hash whose probe run holds no entry with its tag.
func TestTagged(t *testing.T) {
	tb := newDevTable(nil)
	hashes := map[uint64]uint32{}
	for i := range uint32(20) {
		h := uint64(i+1)<<32 | uint64(i*7) // distinct tags, colliding slots
		tb.insert(h, i)
		hashes[h] = i
	}
	for h, idx := range hashes {
		if got := tb.tagged(h); got != idx+1 {
			t.Fatalf("tagged(%x) = %d, want %d", h, got, idx+1)
		}
	}
	if got := tb.tagged(999 << 32); got != 0 {
		t.Fatalf("tagged of an absent tag = %d", got)
	}
}
