package detect

import (
	"math"
	"unsafe"

	"github.com/tapline/tapline/windows/wire"
)

// CUSUM is Page's two-sided cumulative sum on standardised deviations
// from a reference level:
//
//	S⁺ = max(0, S⁺ + z - k)   S⁻ = max(0, S⁻ - z - k)
//
// and the score is the larger sum, signed by its direction. A shift of
// δ standard deviations lasting n windows adds about n(δ-k), so a
// threshold h catches small shifts that no single window shows, after
// about h/(δ-k) windows. z is clipped to ±clip so one spike cannot cross
// h alone: spikes are the other detectors' job.
//
// The reference (mean and standard deviation) is learned over the first
// warmup windows and then follows the series with weight alpha, but
// only while both sums are below h/2, so a drift does not drag the
// reference along while it accumulates. After a score above h (an
// alarm) the detector starts over: the sums are cleared and the
// reference is learned again on the new level, as change detection does
// after a change point. State: a few words; cost O(1).
type CUSUM struct {
	k, h, alpha float64
	warmup      int
	ref         Moments
	pos, neg    float64
}

const cusumClip = 4

// NewCUSUM returns a detector with drift allowance k and alarm level h
// (both in standard deviations).
func NewCUSUM(k, h, alpha float64, warmup int) *CUSUM {
	return &CUSUM{k: k, h: h, alpha: alpha, warmup: warmup}
}

// Observe implements Detector.
func (d *CUSUM) Observe(_ int64, v float64) (float64, bool) {
	if d.ref.N < d.warmup {
		d.ref.Learn(v, 1/float64(d.ref.N+1))
		return 0, false
	}
	z := max(-cusumClip, min(ratio(v-d.ref.Mean, math.Sqrt(d.ref.Var), d.ref.Mean), cusumClip))
	d.pos = max(0, d.pos+z-d.k)
	d.neg = max(0, d.neg-z-d.k)
	score := d.pos
	if d.neg > d.pos {
		score = -d.neg
	}
	switch {
	case math.Abs(score) > d.h:
		d.ref.N, d.pos, d.neg = 0, 0, 0
	case d.pos < d.h/2 && d.neg < d.h/2:
		d.ref.Learn(v, d.alpha)
	}
	return score, true
}

// Append implements Detector.
func (d *CUSUM) Append(w *wire.Writer) {
	w.Uint(uint64(d.ref.N))
	w.Float(d.ref.Mean)
	w.Float(d.ref.Var)
	w.Float(d.pos)
	w.Float(d.neg)
}

// Restore implements Detector.
func (d *CUSUM) Restore(r *wire.Reader) {
	d.ref.N = int(r.Uint())
	d.ref.Mean, d.ref.Var, d.pos, d.neg = r.Float(), r.Float(), r.Float(), r.Float()
}

// Size implements Detector.
func (d *CUSUM) Size() int { return int(unsafe.Sizeof(*d)) }
