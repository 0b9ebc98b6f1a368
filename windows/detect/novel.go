package detect

import (
	"math"

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
type Novel struct {
	Detector
	decay  float64
	peak   float64
	warmup int
	scored int // windows scored, counted up to warmup
}

// NewNovel wraps d with a peak of the given half-life in windows that
// learns from warmup scored windows before it passes any.
func NewNovel(d Detector, halfLife, warmup int) *Novel {
	return &Novel{Detector: d, decay: math.Pow(0.5, 1/float64(halfLife)), warmup: warmup}
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
	n.peak = max(a, n.peak*n.decay)
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
		n.scored = int(r.Uint())
	}
	n.Detector.Restore(r)
}

// Size implements Detector.
func (n *Novel) Size() int { return 40 + n.Detector.Size() }
