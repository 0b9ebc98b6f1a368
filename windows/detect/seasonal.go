package detect

import (
	"math"
	"unsafe"

	"github.com/tapline/tapline/windows/wire"
)

// Seasonal scores a window by its distance from an additive Holt-Winters
// forecast without trend: a level that follows the series plus one
// offset per position in the cycle (hour of day for a 24h period with
// hourly windows, hour of week for 168h). The score is the forecast
// error in units of the typical error.
//
// Robustness (Gelper, Fried & Croux 2010): before it updates the level,
// the offsets or the scale, an error is clipped to ±clip typical errors
// (Huber's ψ), so an anomaly moves the forecast no more than an
// ordinary window does and the score of the next anomaly stays high.
// The typical error is an exponentially weighted mean absolute error
// scaled by √(π/2), the normal-consistent factor.
//
// The first cycle only learns the offsets (each position's first value
// less the running level); scores start after warmup windows, at least
// one cycle. State: 8 bytes per position plus a few words; cost per
// window O(1).
type Seasonal struct {
	period, slide int64 // ms
	alpha, gamma  float64
	warmup        int
	offset        []float64
	level, scale  float64
	seen          int
}

const huberClip = 3

// NewSeasonal returns a detector of a cycle of period ms over windows
// that start every slide ms (period a multiple of slide). alpha is the
// level's weight for a new window, gamma an offset's weight for a new
// cycle.
func NewSeasonal(period, slide int64, alpha, gamma float64, warmup int) *Seasonal {
	n := int(period / slide)
	return &Seasonal{period: period, slide: slide, alpha: alpha, gamma: gamma, warmup: max(warmup, n), offset: make([]float64, n)}
}

// Positions is the number of windows in one cycle.
func (d *Seasonal) Positions() int { return len(d.offset) }

func (d *Seasonal) position(t int64) int {
	p := t % d.period
	if p < 0 {
		p += d.period
	}
	return int(p / d.slide)
}

// Observe implements Detector.
func (d *Seasonal) Observe(t int64, v float64) (float64, bool) {
	i := d.position(t)
	d.seen++
	if d.seen == 1 {
		d.level = v
	}
	if d.seen <= len(d.offset) {
		// First cycle: a plain running mean for the level, the offsets
		// relative to it, and the spread of first differences as the scale.
		d.level += (v - d.level) / float64(d.seen)
		d.offset[i] = v - d.level
		return 0, false
	}
	forecast := d.level + d.offset[i]
	e := v - forecast
	score := finite(ratio(e, math.Sqrt(math.Pi/2)*d.scale, d.level))
	ok := d.seen > d.warmup && d.scale > 0
	// Clip the error before it teaches anything. Until the scale is known
	// (the second cycle), errors are taken as they come.
	c := e
	if d.scale > 0 {
		lim := huberClip * math.Sqrt(math.Pi/2) * d.scale
		c = max(-lim, min(e, lim))
	}
	w := 1 / math.Min(float64(d.seen-len(d.offset)), 1/d.alpha)
	d.scale += w * (math.Abs(c) - d.scale)
	d.level += d.alpha * c
	d.offset[i] += d.gamma * (c - d.alpha*c)
	if !ok {
		return 0, false
	}
	return score, true
}

// Append implements Detector.
func (d *Seasonal) Append(w *wire.Writer) {
	w.Uint(uint64(d.seen))
	w.Float(d.level)
	w.Float(d.scale)
	w.Uint(uint64(len(d.offset)))
	for _, o := range d.offset {
		w.Float(o)
	}
}

// Restore implements Detector.
func (d *Seasonal) Restore(r *wire.Reader) {
	d.seen = int(r.Uint())
	d.level, d.scale = r.Float(), r.Float()
	if n := r.Len(8); n != len(d.offset) {
		r.Fail("seasonal: %d positions, want %d", n, len(d.offset))
		return
	}
	for i := range d.offset {
		d.offset[i] = r.Float()
	}
}

// Size implements Detector.
func (d *Seasonal) Size() int { return int(unsafe.Sizeof(*d)) + 8*len(d.offset) }
