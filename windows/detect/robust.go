package detect

import (
	"cmp"
	"math"
	"slices"
	"unsafe"

	"github.com/tapline/tapline/windows/wire"
)

// madScale turns a median absolute deviation into a standard deviation
// for normal data (1/Φ⁻¹(3/4)).
const madScale = 1.4826

// Robust scores a window by its distance from the median of the last K
// windows, in units of their median absolute deviation (MAD), or, made
// FromRange, by its distance beyond the smallest and largest of them (0
// within): a value the series has not reached in K windows. The second
// is the quieter on bursty series, where values far from the median are
// routine: only a new extreme scores. FromBelow and FromAbove score one
// side of the range only. When more
// than half the history is one value (MAD 0: a flat or quantised signal)
// the scale falls back to the mean absolute deviation from the median,
// which is zero only for a perfectly flat history.
//
// State: the last K values in arrival order and, beside them, their
// slots in value order (two bytes each): 10 bytes a window of history.
// Cost per window: O(K) for the ordered insert and the MAD, no
// allocation.
type Robust struct {
	ring      []float64 // arrival order, ring[next] is the oldest once full
	order     []uint16  // ring's slots by ascending value
	k, warmup int32
	next      int32
	from      From
}

// From is what a Robust detector measures a window's distance from.
type From uint8

// The distances a Robust detector scores.
const (
	FromMedian From = iota // from the history's median
	FromRange              // beyond its smallest or largest value
	FromBelow              // below its smallest value (0 above it)
	FromAbove              // above its largest value (0 below it)
)

// NewRobust returns a robust detector over a history of k windows (at
// most 65,536: the order holds two-byte slots) that scores once it has
// seen warmup (≤ k) of them, by the distance from.
func NewRobust(k, warmup int, from From) *Robust {
	if k > math.MaxUint16+1 {
		panic("detect: robust history over 65,536 windows")
	}
	return &Robust{k: int32(k), warmup: int32(min(warmup, k)), from: from}
}

// Observe implements Detector.
func (d *Robust) Observe(_ int64, v float64) (float64, bool) {
	score, ok := 0.0, len(d.order) >= int(d.warmup)
	if ok {
		med, mad := d.median(), d.mad()
		lo, hi := d.at(0), d.at(len(d.order)-1)
		switch {
		case d.from == FromMedian:
			score = finite(ratio(v-med, mad, med))
		case v > hi && d.from != FromBelow:
			score = finite(ratio(v-hi, mad, med))
		case v < lo && d.from != FromAbove:
			score = finite(ratio(v-lo, mad, med))
		}
	}
	d.learn(v)
	return score, ok
}

// Baseline returns the median and the scale scores are measured in.
func (d *Robust) Baseline() (median, scale float64) {
	if len(d.order) == 0 {
		return 0, 0
	}
	return d.median(), d.mad()
}

// at is the i-th smallest value of the history.
func (d *Robust) at(i int) float64 { return d.ring[d.order[i]] }

// search is the first position in order whose value is at least v.
func (d *Robust) search(v float64) int {
	lo, hi := 0, len(d.order)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.ring[d.order[m]] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (d *Robust) learn(v float64) {
	if d.ring == nil {
		d.ring, d.order = make([]float64, 0, d.k), make([]uint16, 0, d.k)
	}
	if len(d.ring) < int(d.k) {
		i := d.search(v)
		d.order = slices.Insert(d.order, i, uint16(len(d.ring)))
		d.ring = append(d.ring, v)
		return
	}
	// The oldest slot leaves the order (found among the values equal to
	// its own) and comes back where v belongs.
	slot := uint16(d.next)
	i := d.search(d.ring[slot])
	for d.order[i] != slot {
		i++
	}
	d.order = slices.Delete(d.order, i, i+1)
	d.ring[slot] = v
	d.order = slices.Insert(d.order, d.search(v), slot)
	d.next = (d.next + 1) % d.k
}

func (d *Robust) median() float64 {
	n := len(d.order)
	if n%2 == 1 {
		return d.at(n / 2)
	}
	return (d.at(n/2-1) + d.at(n/2)) / 2
}

// mad returns the scale: madScale × MAD, or when that is 0, 1.2533 ×
// the mean absolute deviation (the normal-consistent factor √(π/2)).
// The MAD is the median of |x - median|, found by walking outwards from
// the middle of the sorted history, which yields the deviations in
// increasing order: O(K) and no scratch memory.
func (d *Robust) mad() float64 {
	n := len(d.order)
	if n < 2 {
		return 0
	}
	med := d.median()
	lo, hi := n/2-1, n/2 // deviations grow leftwards from lo, rightwards from hi
	var a, b float64     // the two middle deviations
	for k := 0; k <= n/2; k++ {
		var dev float64
		if hi >= n || (lo >= 0 && med-d.at(lo) <= d.at(hi)-med) {
			dev = med - d.at(lo)
			lo--
		} else {
			dev = d.at(hi) - med
			hi++
		}
		if k == (n-1)/2 {
			a = dev
		}
		if k == n/2 {
			b = dev
		}
	}
	if mad := (a + b) / 2; mad > 0 {
		return madScale * mad
	}
	var sum float64
	for _, x := range d.ring {
		sum += math.Abs(x - med)
	}
	return math.Sqrt(math.Pi/2) * sum / float64(n)
}

// Append implements Detector. Only the arrival order is written; the
// value order is rebuilt.
func (d *Robust) Append(w *wire.Writer) {
	w.Uint(uint64(len(d.ring)))
	for i := range d.ring {
		w.Float(d.ring[(int(d.next)+i)%len(d.ring)])
	}
}

// Restore implements Detector.
func (d *Robust) Restore(r *wire.Reader) {
	n := r.Len(8)
	if n > int(d.k) {
		r.Fail("robust: history of %d windows, want at most %d", n, d.k)
		return
	}
	d.ring, d.order, d.next = make([]float64, n, d.k), make([]uint16, n, d.k), 0
	for i := range d.ring {
		d.ring[i] = r.Float()
		d.order[i] = uint16(i)
	}
	slices.SortFunc(d.order, func(a, b uint16) int { return cmp.Compare(d.ring[a], d.ring[b]) })
}

// Size implements Detector.
func (d *Robust) Size() int { return int(unsafe.Sizeof(*d)) + 10*int(d.k) }
