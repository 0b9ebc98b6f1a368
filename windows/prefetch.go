package windows

import (
	"unsafe"

	"github.com/tapline/tapline/windows/internal/prefetch"
)

// Prefetching. With hundreds of thousands of devices the device table,
// the devices and their panes no longer fit in the caches, and every
// record waits on three misses in a row before any work: its slot in the
// device table, then its device, then the panes its metrics go to. A
// caller that holds the next records (a GetRecords batch) names each
// one's device a few records ahead with Prefetch, and the aggregator
// loads ahead in three stages, prefetchLag calls apart, each starting
// when the one before it has arrived: the slot, then the device, then the
// device's panes at the offset of its last record (where a device
// reporting every few seconds writes next). All three misses overlap with
// the records in between. A hint: a wrong or stale guess costs a wasted
// load, never a wrong result.

// prefetchDevices is the fleet size from which Prefetch works: below it
// the tables stay in the caches and the extra hashing would be pure cost.
const prefetchDevices = 1 << 16

// prefetchLag is how many calls apart the stages are: a record's panes
// are asked for 2*prefetchLag calls after its slot, so callers name a
// record more than that ahead (pipeline.Lookahead).
const prefetchLag = 2

// ahead is the devices named in the last 2*prefetchLag calls.
type ahead struct {
	named [2 * prefetchLag]struct {
		h   uint64 // hash of the id
		dev uint32 // device index + 1 once found (stage 2), 0 before
	}
	n uint32 // calls
}

// Prefetching reports whether Prefetch does anything: whether the fleet
// is large enough for it to pay.
func (a *Aggregator) Prefetching() bool { return len(a.devices) >= prefetchDevices }

// Prefetch announces that a record of device id comes a few records from
// now (Prefetching: otherwise it costs a hash for nothing).
func (a *Aggregator) Prefetch(id []byte) {
	r := &a.ahead
	t := &a.devs
	k := r.n % uint32(len(r.named))
	// Stage 3: the device named 2*prefetchLag calls ago has arrived (dev
	// is 0 until stage 2 found it).
	if old := r.named[k]; old.dev != 0 {
		a.prefetchPanes(old.dev - 1)
	}
	// Stage 2: the slot named prefetchLag calls ago has arrived. The tag
	// alone picks the device (a collision loads another: harmless).
	if r.n >= prefetchLag {
		mid := &r.named[(r.n-prefetchLag)%uint32(len(r.named))]
		if mid.dev = t.tagged(mid.h); mid.dev != 0 {
			prefetch.Lines(unsafe.Pointer(&a.devices[mid.dev-1]), 2) // what the hot path reads
		}
	}
	// Stage 1: the new device's slot.
	h := t.hash(id)
	r.named[k].h, r.named[k].dev = h, 0
	r.n++
	prefetch.Line(unsafe.Pointer(&t.slots[h&t.mask]))
}

// prefetchPanes asks for the panes of device di's inline series (its
// first eight) at the offset of its last record. A device's series are
// usually created together, consecutive in one chunk, so their panes at
// one offset are adjacent lines: one run.
func (a *Aggregator) prefetchPanes(di uint32) {
	if di >= uint32(len(a.devices)) {
		return // the devices moved since: a stale index
	}
	d := &a.devices[di]
	n := min(int(d.n), len(d.inl))
	if n == 0 {
		return
	}
	col := floorMod(floorDiv(d.last, a.pane), a.ring) << chunkBits
	lo, hi := d.inl[0].series, d.inl[0].series
	for _, sl := range d.inl[1:n] {
		lo, hi = min(lo, sl.series), max(hi, sl.series)
	}
	if int(hi-lo) < len(d.inl) && lo>>chunkBits == hi>>chunkBits {
		a.prefetchPane(lo, col, int(hi-lo)+1)
		return
	}
	for _, sl := range d.inl[:n] {
		a.prefetchPane(sl.series, col, 1)
	}
}

// prefetchPane asks for the panes of series si and the n-1 after it (in
// its chunk) at column col.
func (a *Aggregator) prefetchPane(si uint32, col int64, n int) {
	c := int(si >> chunkBits)
	if c >= len(a.chunks) {
		return
	}
	ch := a.chunks[c]
	if i := col | int64(si&chunkMask); i+int64(n) <= int64(len(ch)) {
		prefetch.Lines(unsafe.Pointer(&ch[i]), n)
	}
}
