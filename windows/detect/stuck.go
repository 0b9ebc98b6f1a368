package detect

import (
	"unsafe"

	"github.com/tapline/tapline/windows/wire"
)

// Stuck tells a value that stopped changing from one that never changes.
// It observes each window's range (max - min of its readings): a window
// whose readings are all equal (range 0; the rule reads windows of three
// readings or more) is stuck when the series' windows before it all
// varied for at least history windows in a row, and the flat windows
// after it stay stuck until one varies again. A series that is flat now
// and then by nature (a pump off at night, a machine idle at weekends, a
// quantized sensor at rest) keeps resetting the run, so it never alerts;
// a sensor that froze, a gateway repeating its last value, a firmware
// that stopped sampling does. The score is 1 for a stuck window and 0
// otherwise. The robust detector on the stddev from below (DETECTION.md)
// finds frozen values too but also near-flat hours of a quantized
// series, and keeps 10 bytes a window of history; this keeps two
// numbers.
type Stuck struct {
	history int
	varied  int  // windows in a row that varied, counted up to history
	stuck   bool // in a flat run that began after history varied windows
}

// NewStuck returns a detector that needs history varied windows in a row
// before a flat one is stuck.
func NewStuck(history int) *Stuck { return &Stuck{history: history} }

// Observe implements Detector: rng is the window's max minus its min. It
// is always ready; a series younger than history windows cannot be stuck.
func (d *Stuck) Observe(_ int64, rng float64) (float64, bool) {
	if rng != 0 {
		d.varied, d.stuck = min(d.varied+1, d.history), false
		return 0, true
	}
	d.stuck = d.stuck || d.varied >= d.history
	d.varied = 0
	if d.stuck {
		return 1, true
	}
	return 0, true
}

// Append implements Detector.
func (d *Stuck) Append(w *wire.Writer) {
	w.Uint(uint64(d.varied))
	w.Bool(d.stuck)
}

// Restore implements Detector.
func (d *Stuck) Restore(r *wire.Reader) {
	d.varied = min(int(r.Uint()), d.history)
	d.stuck = r.Bool()
}

// Size implements Detector.
func (d *Stuck) Size() int { return int(unsafe.Sizeof(*d)) }
