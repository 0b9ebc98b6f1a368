package windows

import "hash/maphash"

// devTable maps device ids to device indexes: open addressing with linear
// probing and backward-shift deletion. A slot holds 32 bits of the hash
// and the index, so a lookup usually touches one slot and then the device
// itself, whose inline id confirms the match. It replaces a Go map, whose
// lookups also chase the key's string pointer.
type devTable struct {
	seed   maphash.Seed
	slots  []devSlot
	mask   uint64
	n      int
	rehash func(idx uint32) uint64 // the full hash of device idx's id
}

type devSlot struct {
	tag uint32 // high 32 bits of the hash
	idx uint32 // device index + 1; 0 marks an empty slot
}

func newDevTable(rehash func(uint32) uint64) devTable {
	return devTable{seed: maphash.MakeSeed(), slots: make([]devSlot, 64), mask: 63, rehash: rehash}
}

func (t *devTable) hash(id []byte) uint64 { return maphash.Bytes(t.seed, id) }

// hashString is hash for an id held as a string: the same value.
func (t *devTable) hashString(id string) uint64 { return maphash.String(t.seed, id) }

func (t *devTable) insert(h uint64, idx uint32) {
	if (t.n+1)*2 > len(t.slots) {
		t.grow()
	}
	t.put(h, idx)
	t.n++
}

func (t *devTable) put(h uint64, idx uint32) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i].idx == 0 {
			t.slots[i] = devSlot{tag: uint32(h >> 32), idx: idx + 1}
			return
		}
	}
}

// tagged returns the index + 1 of the first entry in h's probe run whose
// tag is h's, 0 if none: a guess, for prefetching, that does not touch
// the device to confirm its id as a lookup does.
func (t *devTable) tagged(h uint64) uint32 {
	tag := uint32(h >> 32)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if s := t.slots[i]; s.idx == 0 || s.tag == tag {
			return s.idx
		}
	}
}

// reserve sizes an empty table for n entries without growing.
func (t *devTable) reserve(n int) {
	size := len(t.slots)
	for (n+1)*2 > size {
		size *= 2
	}
	t.slots = make([]devSlot, size)
	t.mask = uint64(size - 1)
}

// grow doubles the table. Slots keep only 32 bits of the hash, so the
// full hash comes from rehash.
func (t *devTable) grow() {
	old := t.slots
	t.slots = make([]devSlot, 2*len(old))
	t.mask = uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.idx != 0 {
			t.put(t.rehash(s.idx-1), s.idx-1)
		}
	}
}

// remove deletes idx (whose id hashes to h), shifting later entries of
// the probe run back so lookups never stop early.
func (t *devTable) remove(h uint64, idx uint32) {
	i := h & t.mask
	for t.slots[i].idx != idx+1 {
		i = (i + 1) & t.mask
	}
	for {
		t.slots[i] = devSlot{}
		j := i
		for {
			j = (j + 1) & t.mask
			s := t.slots[j]
			if s.idx == 0 {
				t.n--
				return
			}
			home := t.rehash(s.idx-1) & t.mask
			// move s back to i if its home is not in (i, j]
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.slots[i] = s
				i = j
				break
			}
		}
	}
}
