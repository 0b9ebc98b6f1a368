// Package detect holds the streaming anomaly detectors that rules run on
// the windows an Aggregator closes: one value per window, scored against
// what the series did before it, in one pass, causally (a score never
// depends on later windows) and with bounded state.
//
// Each detector turns a window's aggregate into a signed score in units
// of the series' own spread, so one threshold means the same on a CPU
// percentage and on bytes per second:
//
//   - Robust: distance from the median of the last K windows in median
//     absolute deviations (Hampel's identifier; Rousseeuw & Croux 1993).
//     Spikes barely move a median, so the baseline does not learn the
//     anomalies it is looking for.
//   - Seasonal: distance from an additive Holt-Winters forecast (level
//     plus one offset per position in a daily or weekly cycle) with
//     residuals clipped before they update anything (Gelper, Fried &
//     Croux 2010, "Robust forecasting with exponential and Holt-Winters
//     smoothing").
//   - CUSUM: Page's (1954) two-sided cumulative sum of standardised
//     deviations from a reference level, for drifts and level shifts too
//     small for any one window to look odd. It restarts on the new level
//     after an alarm.
//   - Forest: a streaming Random Cut Forest (Guha, Mishra, Roy &
//     Schrijvers, ICML 2016) over shingles of one or more metrics, scored
//     by collusive displacement, with the share of the score each metric
//     contributes.
//
// Detectors are deterministic: equal inputs give equal scores, and
// Append/Restore carry all their state (the forest's random source
// included) so a replay from a snapshot continues exactly. They are owned
// by one goroutine.
package detect

import (
	"math"

	"github.com/tapline/tapline/windows/wire"
)

// Detector scores one series' window aggregates in event-time order.
type Detector interface {
	// Observe scores v, the aggregate of the window that starts at t
	// (Unix ms), then learns from it. ok is false while the detector is
	// still warming up: it has no opinion yet.
	Observe(t int64, v float64) (score float64, ok bool)
	// Append appends the detector's state to w.
	Append(w *wire.Writer)
	// Restore loads state written by Append of a detector made with the
	// same parameters.
	Restore(r *wire.Reader)
	// Size is the detector's memory in bytes, for the bounds it is
	// documented against.
	Size() int
}

// finite clamps ±Inf to the largest finite values (JSON cannot hold
// infinity) and maps NaN to 0.
func finite(z float64) float64 {
	if math.IsNaN(z) {
		return 0
	}
	return max(-math.MaxFloat64, min(z, math.MaxFloat64))
}

// ratio is d/scale with a floor on scale relative to the level, so a
// series that has been perfectly flat gives an infinite score for any
// change and a finite one for float noise.
func ratio(d, scale, level float64) float64 {
	floor := 1e-9 * max(1, math.Abs(level))
	if scale > floor {
		return d / scale
	}
	if math.Abs(d) > floor {
		return math.Copysign(math.Inf(1), d)
	}
	return 0
}
