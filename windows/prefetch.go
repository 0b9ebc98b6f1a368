package windows

import (
	"unsafe"

	"github.com/tapline/tapline/windows/internal/prefetch"
)

// Prefetching. With hundreds of thousands of devices the device table and
// the devices no longer fit in the caches, and every record waits on two
// misses in a row before any work: its slot in the device table, then its
// device. A caller that holds the next records (a GetRecords batch) names
// each one's device a few records ahead with Prefetch; the aggregator
// starts loading its slot then, and its device two calls later, when the
// slot has arrived, so both misses overlap with the records in between.
// A hint: a wrong or stale guess costs a wasted load, never a wrong
// result.

// prefetchDevices is the fleet size from which Prefetch works: below it
// the tables stay in the caches and the extra hashing would be pure cost.
const prefetchDevices = 1 << 16

// prefetchLag is how many calls after its slot a device is loaded.
const prefetchLag = 2

// Prefetching reports whether Prefetch does anything: whether the fleet
// is large enough for it to pay.
func (a *Aggregator) Prefetching() bool { return len(a.devices) >= prefetchDevices }

// Prefetch announces that a record of device id comes a few records from
// now (Prefetching: otherwise it costs a hash for nothing).
func (a *Aggregator) Prefetch(id []byte) {
	t := &a.devs
	h := t.hash(id)
	prefetch.Line(unsafe.Pointer(&t.slots[h&t.mask]))
	k := a.ahead.n % uint32(len(a.ahead.h))
	old, had := a.ahead.h[k], a.ahead.n >= prefetchLag
	a.ahead.h[k] = h
	a.ahead.n++
	if !had {
		return
	}
	// The device of the hash named prefetchLag calls ago: its slot has had
	// the time to arrive. The tag alone picks it (a collision loads
	// another device: harmless).
	tag := uint32(old >> 32)
	for i := old & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s.idx == 0 {
			return
		}
		if s.tag == tag {
			d := unsafe.Pointer(&a.devices[s.idx-1])
			prefetch.Line(d)
			prefetch.Line(unsafe.Add(d, 64))
			return
		}
	}
}
