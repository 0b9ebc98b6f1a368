package detect

import (
	"math"
	"slices"

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
// State: the last K values twice (arrival order and sorted), 16 bytes a
// window of history. Cost per window: O(K) for the sorted insert and the
// MAD, no allocation.
type Robust struct {
	k, warmup int
	ring      []float64 // arrival order, ring[next] is the oldest once full
	sorted    []float64
	next      int
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

// NewRobust returns a robust detector over a history of k windows that
// scores once it has seen warmup (≤ k) of them, by the distance from.
func NewRobust(k, warmup int, from From) *Robust {
	return &Robust{k: k, warmup: min(warmup, k), from: from}
}

// Observe implements Detector.
func (d *Robust) Observe(_ int64, v float64) (float64, bool) {
	score, ok := 0.0, len(d.sorted) >= d.warmup
	if ok {
		med, mad := d.median(), d.mad()
		lo, hi := d.sorted[0], d.sorted[len(d.sorted)-1]
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
	if len(d.sorted) == 0 {
		return 0, 0
	}
	return d.median(), d.mad()
}

func (d *Robust) learn(v float64) {
	if d.ring == nil {
		d.ring, d.sorted = make([]float64, 0, d.k), make([]float64, 0, d.k)
	}
	if len(d.ring) < d.k {
		d.ring = append(d.ring, v)
		i, _ := slices.BinarySearch(d.sorted, v)
		d.sorted = slices.Insert(d.sorted, i, v)
		return
	}
	old := d.ring[d.next]
	d.ring[d.next] = v
	d.next = (d.next + 1) % d.k
	// Replace old by v in sorted order with one shift of the values between.
	i, _ := slices.BinarySearch(d.sorted, old)
	j, _ := slices.BinarySearch(d.sorted, v)
	switch {
	case j > i:
		copy(d.sorted[i:j-1], d.sorted[i+1:j])
		d.sorted[j-1] = v
	default:
		copy(d.sorted[j+1:i+1], d.sorted[j:i])
		d.sorted[j] = v
	}
}

func (d *Robust) median() float64 {
	s := d.sorted
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// mad returns the scale: madScale × MAD, or when that is 0, 1.2533 ×
// the mean absolute deviation (the normal-consistent factor √(π/2)).
// The MAD is the median of |x - median|, found by walking outwards from
// the middle of the sorted history, which yields the deviations in
// increasing order: O(K) and no scratch memory.
func (d *Robust) mad() float64 {
	s := d.sorted
	n := len(s)
	if n < 2 {
		return 0
	}
	med := d.median()
	lo, hi := n/2-1, n/2 // deviations grow leftwards from lo, rightwards from hi
	var a, b float64     // the two middle deviations
	for k := 0; k <= n/2; k++ {
		var dev float64
		if hi >= n || (lo >= 0 && med-s[lo] <= s[hi]-med) {
			dev = med - s[lo]
			lo--
		} else {
			dev = s[hi] - med
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
	for _, x := range s {
		sum += math.Abs(x - med)
	}
	return math.Sqrt(math.Pi/2) * sum / float64(n)
}

// Append implements Detector. Only the arrival order is written; the
// sorted copy is rebuilt.
func (d *Robust) Append(w *wire.Writer) {
	w.Uint(uint64(len(d.ring)))
	for i := range d.ring {
		w.Float(d.ring[(d.next+i)%len(d.ring)])
	}
}

// Restore implements Detector.
func (d *Robust) Restore(r *wire.Reader) {
	n := r.Len(8)
	if n > d.k {
		r.Fail("robust: history of %d windows, want at most %d", n, d.k)
		return
	}
	d.ring, d.sorted, d.next = make([]float64, n, d.k), make([]float64, n, d.k), 0
	for i := range d.ring {
		d.ring[i] = r.Float()
	}
	copy(d.sorted, d.ring)
	slices.Sort(d.sorted)
}

// Size implements Detector.
func (d *Robust) Size() int { return 64 + 16*d.k }
