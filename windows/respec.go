package windows

import (
	"fmt"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/tapline/tapline/windows/wire"
)

// Window state is kept by spec across a change of the window specs: a
// snapshot taken under other specs restores when the pane (the gcd of
// sizes and slides), the lateness and quantiles are unchanged, whatever
// specs were added or removed. Panes do not depend on the specs, so:
//
//   - a kept spec goes on exactly as if nothing had changed;
//   - a removed spec's open windows are delivered (flushed, as Flush would
//     at the end of a shard), with SpecIndex -1 as no current spec is
//     theirs, at the first call after the restore;
//   - an added spec delivers only windows starting at or after the
//     shard's watermark at the snapshot: earlier ones would lack the
//     panes the old specs no longer needed;
//   - sessions likewise by name: a removed session spec's open sessions
//     are delivered, an added one starts with the next record.
//
// A change of the pane, the lateness or quantiles still restarts the
// state (ErrIncompatible): the panes would mean something else.

// pendingWindow is a window to deliver at the first call after a
// restore: a removed spec's.
type pendingWindow struct {
	spec Spec
	w    Window
}

// emitPending delivers the pending windows.
func (a *Aggregator) emitPending() {
	for i := range a.pending {
		pw := &a.pending[i]
		a.win = pw.w
		a.win.Spec, a.win.SpecIndex, a.win.Sketch = &pw.spec, -1, nil
		a.stats.Windows++
		a.out.Window(&a.win)
	}
	a.pending = nil
}

// pendingCollector keeps the windows an Aggregator delivers, for pending.
type pendingCollector struct {
	a    *Aggregator // the new one
	spec func(w *Window) (Spec, bool)
}

func (c *pendingCollector) Window(w *Window) {
	if sp, removed := c.spec(w); removed {
		c.a.pending = append(c.a.pending, pendingWindow{spec: sp, w: *w})
	}
}
func (c *pendingCollector) Watermark(int64)    {}
func (c *pendingCollector) Retain(Handle) bool { return true }

// snapshotOptions reads the window options a snapshot was taken under:
// its specs, lateness and quantiles; the rest are a's.
func (a *Aggregator) snapshotOptions(b []byte) (Options, error) {
	r := wire.Reader{B: b}
	if m := r.String(); m != snapshotMagic {
		return Options{}, fmt.Errorf("%w (and its format predates restoring under other specs)", ErrIncompatible)
	}
	o := a.opts
	o.Specs = nil
	for range r.Len(3) {
		name, size, slide := r.String(), r.Int(), r.Int()
		sp, err := ParseSpec(name)
		if err != nil || sp.Size.Milliseconds() != size || sp.Slide.Milliseconds() != slide {
			return Options{}, fmt.Errorf("%w: spec %q in the snapshot", ErrIncompatible, name)
		}
		o.Specs = append(o.Specs, sp)
	}
	o.AllowedLateness = msDuration(r.Int())
	o.Quantiles = r.Bool()
	if err := r.Err(); err != nil {
		return Options{}, fmt.Errorf("windows: restore: %w", err)
	}
	return o, nil
}

// restoreChanged restores a snapshot taken under other specs into a (new):
// see the top of this file.
func (a *Aggregator) restoreChanged(b []byte) ([]byte, error) {
	oldOpts, err := a.snapshotOptions(b)
	if err != nil {
		return nil, err
	}
	if oldOpts.AllowedLateness != a.opts.AllowedLateness || oldOpts.Quantiles != a.opts.Quantiles {
		return nil, fmt.Errorf("%w: the lateness or quantiles changed", ErrIncompatible)
	}
	cur := map[string]int{}
	for i, s := range a.opts.Specs {
		cur[s.Name] = i
	}
	out := &pendingCollector{a: a}
	oa, err := New(oldOpts, out)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIncompatible, err)
	}
	if oa.pane != a.pane {
		return nil, fmt.Errorf("%w: the pane (the gcd of window sizes and slides) changed from %v to %v", ErrIncompatible, msDuration(oa.pane), msDuration(a.pane))
	}
	rest, err := oa.Restore(b)
	if err != nil {
		return nil, err
	}
	oa.mergeNewDevices()
	out.spec = func(w *Window) (Spec, bool) {
		_, kept := cur[w.Spec.Name]
		return *w.Spec, !kept
	}
	// The removed specs' open windows, as Flush would deliver them.
	for spi, s := range oldOpts.Specs {
		if _, kept := cur[s.Name]; kept || s.Session() {
			continue
		}
		sp := oa.specs[spi]
		for _, di := range oa.order {
			d := &oa.devices[di]
			lastPane := floorDiv(d.last, oa.pane) * oa.pane
			for e := d.closed + oa.pane; e-sp.size <= lastPane; e += oa.pane {
				if floorMod(e-sp.size, sp.slide) != 0 {
					continue
				}
				for j := range int(d.n) {
					oa.emit(e, spi, di, *d.slot(j))
				}
			}
		}
	}
	for k, ss := range oa.sessions {
		if _, kept := cur[oldOpts.Specs[ss.index].Name]; kept {
			continue
		}
		for _, di := range oa.order {
			d := &oa.devices[di]
			for j := range int(d.n) {
				if si := d.slot(j).series; oa.open[int(si)*len(oa.sessions)+k].Count > 0 {
					oa.emitSession(di, si, k)
				}
			}
		}
	}

	// Everything else moves over; the panes into the new ring.
	a.maxTS, a.wm, a.closed, a.floor = oa.maxTS, oa.wm, oa.closed, oa.floor
	a.metricIndex, a.metricNames, a.metricKeys, a.metricRefs, a.freeMetrics = oa.metricIndex, oa.metricNames, oa.metricKeys, oa.metricRefs, oa.freeMetrics
	a.devices, a.freeDevices, a.order, a.newDevices = oa.devices, oa.freeDevices, oa.order, oa.newDevices
	for i := range a.devices {
		if id := a.devices[i].id; id != "" {
			a.devs.insert(a.devs.hashString(id), uint32(i))
		}
	}
	a.series, a.freeSeries, a.liveSeries = oa.series, oa.freeSeries, oa.liveSeries
	a.chunks = make([][]pane, len(oa.chunks))
	for c := range a.chunks {
		a.chunks[c] = make([]pane, a.ring<<chunkBits)
	}
	if a.opts.Quantiles {
		a.sketches = make([]*ddsketch.DDSketch, 0, int64(len(a.series))*a.ring)
		for range int64(len(a.series)) * a.ring {
			sk, _ := newSketch()
			a.sketches = append(a.sketches, sk)
		}
	}
	for _, di := range oa.order {
		d := &oa.devices[di]
		// Panes the new specs' open windows need: from the start of the
		// oldest (ending just after the device's closed point) on.
		from := floorDiv(d.closed+a.pane-max(a.maxSize, a.pane), a.pane)
		for j := range int(d.n) {
			si := d.slot(j).series
			for off := range oa.ring {
				pn := oa.paneOf(si, off)
				if pn.count == 0 {
					continue
				}
				q := oa.paneNum(pn.epoch)
				if q < from {
					continue
				}
				noff := floorMod(q, a.ring)
				*a.paneOf(si, noff) = *pn
				if a.sketches != nil {
					a.sketches[int64(si)*a.ring+noff] = oa.sketches[int64(si)*oa.ring+off]
				}
			}
		}
	}
	if len(a.sessions) > 0 {
		a.open = make([]Agg, len(a.series)*len(a.sessions))
		for k, ss := range a.sessions {
			for j, os := range oa.sessions {
				if oldOpts.Specs[os.index].Name != a.opts.Specs[ss.index].Name {
					continue
				}
				for si := range a.series {
					a.open[si*len(a.sessions)+k] = oa.open[si*len(oa.sessions)+j]
				}
			}
		}
	}
	old := map[string]int64{}
	for i, s := range oldOpts.Specs {
		old[s.Name] = oa.specFrom[i]
	}
	for i, s := range a.opts.Specs {
		if from, kept := old[s.Name]; kept {
			a.specFrom[i] = from
		} else {
			a.specFrom[i] = oa.wm
		}
	}
	a.pending = append(oa.pending, a.pending...)
	return rest, nil
}

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
