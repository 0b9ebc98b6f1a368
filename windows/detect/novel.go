package detect

import (
	"math"
	"unsafe"

	"github.com/tapline/tapline/windows/wire"
)

// Novel passes on only the part of a detector's score that exceeds the
// highest score of earlier windows, a peak that decays by half every
// half-life windows. A series whose bursts recur (network traffic,
// batch jobs) learns how high its scores go and alerts only on a burst
// larger than any recent one; a quiet series keeps a low peak and alerts
// as before. It is the idea behind Numenta's anomaly likelihood (Ahmad
// et al. 2017, "Unsupervised real-time anomaly detection for streaming
// data"): judge a score against the series' own history of scores, not
// against a fixed level. Like the anomaly likelihood's learning period,
// the peak can first learn from a number of scored windows (warmup)
// during which nothing passes: a peak of 0 would let a new series'
// first ordinary scores through whole. One word of state, two with a
// warmup.
//
// An anomaly's own score would become the peak, and a second anomaly
// days later would have to beat the first to pass. With a rise factor
// the peak climbs by at most that factor a window once learnt: a lasting
// change of regime is still learnt in a few windows (by 1.5 a window, a
// tenfold rise in six), a single spike hardly moves the bar. On NAB it
// found the second incident of three series (benchmarks/DETECTION.md).
type Novel struct {
	Detector
	decay  float64
	rise   float64 // 0: unlimited
	peak   float64
	warmup int32
	scored int32 // windows scored, counted up to warmup
}

// NewNovel wraps d with a peak of the given half-life in windows that
// learns from warmup scored windows before it passes any, and then rises
// by at most the factor rise a window (0: as high as any score).
func NewNovel(d Detector, halfLife, warmup int, rise float64) *Novel {
	return &Novel{Detector: d, decay: math.Pow(0.5, 1/float64(halfLife)), warmup: int32(warmup), rise: rise}
}

// Observe implements Detector.
func (n *Novel) Observe(t int64, v float64) (float64, bool) {
	score, ok := n.Detector.Observe(t, v)
	if !ok {
		return score, ok
	}
	a, out := math.Abs(score), 0.0
	if a > n.peak {
		out = math.Copysign(a-n.peak, score)
	}
	learnt := a
	switch {
	case a == math.MaxFloat64:
		// A change off a perfectly flat history (a counter at 0, a
		// sensor stuck) scores the largest float: it is novel, but has no
		// size the peak could learn. Learnt, it would hold the peak for
		// a thousand half-lives and the series would never alert again.
		learnt = 0
	case n.rise > 0 && n.peak > 0 && n.scored >= n.warmup:
		learnt = min(a, n.peak*n.rise)
	}
	n.peak = max(learnt, n.peak*n.decay)
	if n.scored < n.warmup {
		n.scored++
		return 0, false
	}
	return out, true
}

// Append implements Detector.
func (n *Novel) Append(w *wire.Writer) {
	w.Float(n.peak)
	if n.warmup > 0 { // without, the state is as it was before warmups
		w.Uint(uint64(n.scored))
	}
	n.Detector.Append(w)
}

// Restore implements Detector.
func (n *Novel) Restore(r *wire.Reader) {
	n.peak = r.Float()
	if n.warmup > 0 {
		n.scored = int32(min(r.Uint(), uint64(n.warmup)))
	}
	if n.peak > poisoned {
		// Learnt from a flat history's score before Observe refused to:
		// the peak would hide every score for years. Learn it again.
		n.peak, n.scored = 0, 0
	}
	n.Detector.Restore(r)
}

// poisoned is a peak no real score reaches (ratio's floor keeps scores
// under about 1e9 times a relative change) and the largest float, once
// learnt, stays above for 690 half-lives: over five years of the default
// set's hourly windows (half-life 72).
const poisoned = 1e100

// Size implements Detector.
func (n *Novel) Size() int { return int(unsafe.Sizeof(*n)) + n.Detector.Size() }
