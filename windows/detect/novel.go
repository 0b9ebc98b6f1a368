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
// against a fixed level. One word of state.
type Novel struct {
	Detector
	decay float64
	peak  float64
}

// NewNovel wraps d with a peak of the given half-life in windows.
func NewNovel(d Detector, halfLife int) *Novel {
	return &Novel{Detector: d, decay: math.Pow(0.5, 1/float64(halfLife))}
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
	return out, true
}

// Append implements Detector.
func (n *Novel) Append(w *wire.Writer) {
	w.Float(n.peak)
	n.Detector.Append(w)
}

// Restore implements Detector.
func (n *Novel) Restore(r *wire.Reader) {
	n.peak = r.Float()
	n.Detector.Restore(r)
}

// Size implements Detector.
func (n *Novel) Size() int { return 24 + n.Detector.Size() }
