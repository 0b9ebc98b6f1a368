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
			if e > lastUseful {
				e = target
			}
			a.closeAt(e)
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
// spec) order, and evicts series idle for longer than the TTL.
func (a *Aggregator) closeAt(e int64) {
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
		for j := 0; j < len(d.slots); j++ {
			si := d.slots[j].series
			for _, spi := range a.ending {
				a.emit(e, spi, di, d.slots[j])
			}
			if s := &a.series[si]; s.last < evictBefore && !a.out.Retain(makeHandle(si, s.gen)) {
				a.evictSeries(d, j)
				j--
			}
		}
		if len(d.slots) == 0 {
			a.evictDevice(di)
			continue
		}
		kept = append(kept, di)
	}
	a.order = kept
}

func (a *Aggregator) emit(e int64, spi int, di uint32, sl slot) {
	sp := a.specs[spi]
	w := &a.win
	w.Agg = Agg{}
	w.Sketch = nil
	if a.merged != nil {
		a.merged.Clear()
	}
	base := int64(sl.series) * a.ring
	for start := e - sp.size; start < e; start += a.pane {
		off := floorMod(start/a.pane, a.ring) // start is a multiple of the pane
		pn := &a.panes[base+off]
		if pn.Count == 0 || pn.FirstTS < start || pn.FirstTS >= start+a.pane {
			continue
		}
		w.Agg.Merge(pn)
		if a.merged != nil {
			_ = a.merged.MergeWith(a.sketches[base+off])
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

func (a *Aggregator) evictSeries(d *device, j int) {
	si := d.slots[j].series
	s := &a.series[si]
	s.live = false
	s.gen++
	clear(a.panes[int64(si)*a.ring : int64(si+1)*a.ring])
	a.freeSeries = append(a.freeSeries, si)
	a.liveSeries--
	a.stats.Evicted++
	d.slots = slices.Delete(d.slots, j, j+1)
	d.hint = d.hint[:0]
}

func (a *Aggregator) evictDevice(di uint32) {
	d := &a.devices[di]
	delete(a.devIndex, d.id)
	d.id, d.live = "", false
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
		for _, sl := range d.slots {
			s := &a.series[sl.series]
			info.Series, info.Metric, info.Last = makeHandle(sl.series, s.gen), a.metricNames[sl.metric], s.last
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
