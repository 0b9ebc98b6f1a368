package detect

import (
	"math"

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
	seen        int
	mean, vr    float64
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
	if d.seen < d.warmup {
		d.learn(v, 1/float64(d.seen+1))
		return 0, false
	}
	z := max(-cusumClip, min(ratio(v-d.mean, math.Sqrt(d.vr), d.mean), cusumClip))
	d.pos = max(0, d.pos+z-d.k)
	d.neg = max(0, d.neg-z-d.k)
	score := d.pos
	if d.neg > d.pos {
		score = -d.neg
	}
	switch {
	case math.Abs(score) > d.h:
		d.seen, d.pos, d.neg = 0, 0, 0
	case d.pos < d.h/2 && d.neg < d.h/2:
		d.learn(v, d.alpha)
	}
	return score, true
}

// learn updates the reference: weight w for v (1/n while warming up: the
// plain mean and variance).
func (d *CUSUM) learn(v, w float64) {
	d.seen++
	if d.seen == 1 {
		d.mean, d.vr = v, 0
		return
	}
	diff := v - d.mean
	d.mean += w * diff
	d.vr = (1 - w) * (d.vr + w*diff*diff)
}

// Append implements Detector.
func (d *CUSUM) Append(w *wire.Writer) {
	w.Uint(uint64(d.seen))
	w.Float(d.mean)
	w.Float(d.vr)
	w.Float(d.pos)
	w.Float(d.neg)
}

// Restore implements Detector.
func (d *CUSUM) Restore(r *wire.Reader) {
	d.seen = int(r.Uint())
	d.mean, d.vr, d.pos, d.neg = r.Float(), r.Float(), r.Float(), r.Float()
}

// Size implements Detector.
func (d *CUSUM) Size() int { return 80 }
