package windows

import (
	"slices"
	"strings"
)

// advance moves the watermark to wm (if later) and closes every window
// that ends at or before it. The Output hears of the watermark only when it
// crosses a pane boundary: per record would cost too much, and nothing
// downstream needs finer time.
func (a *Aggregator) advance(wm int64) {
	if wm <= a.wm {
		return
	}
	a.wm = wm
	target := floorDiv(wm, a.pane) * a.pane
	if target > a.closed {
		a.mergeNewDevices()
		// Past lastUseful no window can hold data: skip to the target in
		// one step (still one pass there, for eviction).
		lastUseful := floorDiv(a.maxTS, a.pane)*a.pane + a.maxSize
		for e := a.closed + a.pane; e <= target; e += a.pane {
			jumped := false
			if e > lastUseful && e != target {
				e, jumped = target, true
			}
			a.closeAt(e, jumped)
			a.closed = e
		}
		a.out.Watermark(wm)
	}
}

// Flush closes every open window, as at the end of a shard. Records that
// arrive afterwards for those windows are late.
func (a *Aggregator) Flush() {
	if a.maxTS == noData {
		return
	}
	a.advance(floorDiv(a.maxTS, a.pane)*a.pane + a.maxSize)
}

// closeAt delivers the windows ending at boundary e, in (device, metric,
// spec) order, folds the panes that closed into each series' last event
// time, and evicts series idle for longer than the TTL. jumped says the
// boundaries before e were skipped (they held no windows with data).
func (a *Aggregator) closeAt(e int64, jumped bool) {
	a.ending = a.ending[:0]
	for i, s := range a.specs {
		if floorMod(e-s.size, s.slide) == 0 {
			a.ending = append(a.ending, i)
		}
	}
	evictBefore := a.wm - a.ttl
	kept := a.order[:0]
	for _, di := range a.order {
		d := &a.devices[di]
		// The series that stay are compacted in one pass.
		n := 0
		for j := range int(d.n) {
			sl := *d.slot(j)
			for _, spi := range a.ending {
				a.emit(e, spi, di, sl)
			}
			s := &a.series[sl.series]
			a.fold(sl.series, e, jumped)
			if s.last < evictBefore && a.seriesLast(sl.series) < evictBefore && !a.out.Retain(makeHandle(sl.series, s.gen)) {
				a.evictSeries(sl)
				continue
			}
			if n != j {
				*d.slot(n) = sl
			}
			n++
		}
		d.truncate(n)
		if d.n == 0 {
			a.evictDevice(di)
			continue
		}
		kept = append(kept, di)
	}
	a.order = kept
}

// fold records in series si's meta the last event time of the panes that
// boundary e completed: the one before e, or every pane before e after a
// jump.
func (a *Aggregator) fold(si uint32, e int64, jumped bool) {
	s := &a.series[si]
	q := e/a.pane - 1
	if !jumped {
		if pn := a.paneOf(si, floorMod(q, a.ring)); pn.count > 0 && pn.epoch == uint32(q) {
			s.last = max(s.last, q*a.pane+int64(pn.lastAt))
		}
		return
	}
	for off := int64(0); off < a.ring; off++ {
		pn := a.paneOf(si, off)
		if pn.count == 0 {
			continue
		}
		if n := a.paneNum(pn.epoch); n <= q {
			s.last = max(s.last, n*a.pane+int64(pn.lastAt))
		}
	}
}

func (a *Aggregator) emit(e int64, spi int, di uint32, sl slot) {
	sp := a.specs[spi]
	w := &a.win
	w.Agg = Agg{}
	w.Sketch = nil
	if a.merged != nil {
		a.merged.Clear()
	}
	for start := e - sp.size; start < e; start += a.pane {
		q := start / a.pane // start is a multiple of the pane
		off := floorMod(q, a.ring)
		pn := a.paneOf(sl.series, off)
		if pn.count == 0 || pn.epoch != uint32(q) {
			continue
		}
		pa := pn.agg(start)
		w.Agg.Merge(&pa)
		if a.merged != nil {
			_ = a.merged.MergeWith(a.sketches[int64(sl.series)*a.ring+off])
		}
	}
	if w.Count == 0 {
		return
	}
	if a.merged != nil {
		w.Sketch = a.merged
	}
	w.Spec, w.SpecIndex = &a.opts.Specs[spi], spi
	w.Start, w.End = e-sp.size, e
	w.Series = makeHandle(sl.series, a.series[sl.series].gen)
	w.Device = makeHandle(di, a.devices[di].gen)
	w.DeviceID = a.devices[di].id
	w.Metric = a.metricNames[sl.metric]
	a.stats.Windows++
	a.out.Window(w)
}

// evictSeries frees a series and its metric name's reference; the
// caller drops its slot.
func (a *Aggregator) evictSeries(sl slot) {
	si := sl.series
	s := &a.series[si]
	s.gen++
	for off := int64(0); off < a.ring; off++ {
		*a.paneOf(si, off) = pane{}
		if a.sketches != nil {
			a.sketches[int64(si)*a.ring+off].Clear()
		}
	}
	a.freeSeries = append(a.freeSeries, si)
	a.liveSeries--
	a.stats.Evicted++
	a.releaseMetric(sl.metric)
}

func (a *Aggregator) evictDevice(di uint32) {
	d := &a.devices[di]
	a.devs.remove(d.hash, di)
	d.id = ""
	d.gen++
	a.freeDevices = append(a.freeDevices, di)
}

// mergeNewDevices adds devices created since the last boundary to the
// sorted order: sort the few new ones, then merge.
func (a *Aggregator) mergeNewDevices() {
	if len(a.newDevices) == 0 {
		return
	}
	byID := func(x, y uint32) int { return strings.Compare(a.devices[x].id, a.devices[y].id) }
	slices.SortFunc(a.newDevices, byID)
	merged := make([]uint32, 0, len(a.order)+len(a.newDevices))
	i, j := 0, 0
	for i < len(a.order) && j < len(a.newDevices) {
		if byID(a.order[i], a.newDevices[j]) <= 0 {
			merged = append(merged, a.order[i])
			i++
		} else {
			merged = append(merged, a.newDevices[j])
			j++
		}
	}
	merged = append(merged, a.order[i:]...)
	a.order = append(merged, a.newDevices[j:]...)
	a.newDevices = a.newDevices[:0]
}

// SeriesInfo describes one live series for EachSeries.
type SeriesInfo struct {
	Series, Device Handle
	DeviceID       string
	Metric         string
	Last           int64 // largest event time of the series
	DeviceLast     int64 // largest event time of any series of the device
}

// EachSeries calls fn for every live series in (device, metric) order.
// Missing-data rules use it at each watermark. fn must not keep info.
func (a *Aggregator) EachSeries(fn func(info *SeriesInfo)) {
	a.mergeNewDevices()
	var info SeriesInfo
	for _, di := range a.order {
		d := &a.devices[di]
		info.Device, info.DeviceID, info.DeviceLast = makeHandle(di, d.gen), d.id, d.last
		for j := 0; j < int(d.n); j++ {
			sl := d.slot(j)
			s := &a.series[sl.series]
			info.Series, info.Metric, info.Last = makeHandle(sl.series, s.gen), a.metricNames[sl.metric], a.seriesLast(sl.series)
			fn(&info)
		}
	}
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m != 0 && (m < 0) != (b < 0) {
		m += b
	}
	return m
}
