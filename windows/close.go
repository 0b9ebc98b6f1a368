package windows

import (
	"slices"
	"strings"
)

// advance moves the shard watermark to wm (if later). When that crosses a
// pane boundary it sweeps the devices: windows of devices more than
// MaxBacklog behind are delivered (and, after an idle advance, the
// windows each device's own time has passed), idle series are evicted,
// and the Output hears of the watermark. Per pane and not per record:
// nothing downstream needs finer time.
func (a *Aggregator) advance(wm int64, idle bool) {
	if wm <= a.wm {
		return
	}
	a.wm = wm
	target := floorDiv(wm, a.pane) * a.pane
	if target > a.closed {
		a.closed = target
		a.floor = max(a.floor, floorDiv(wm-a.backlog, a.pane)*a.pane)
		a.mergeNewDevices()
		a.sweep(idle)
		a.out.Watermark(wm)
	}
}

// Flush delivers every open window, sessions too, as at the end of a
// shard. Records that arrive afterwards for those windows are late.
func (a *Aggregator) Flush() { a.closeAll(maxTime) }

// CloseThrough delivers every device's windows ending at or before t and
// moves the watermark there, as if every device's clock had reached t:
// the end of an input that stands for time passing (rule unit tests), not
// a shard's (a device may still send a backlog; see the package doc).
func (a *Aggregator) CloseThrough(t int64) { a.closeAll(t) }

// closeAll closes every device's windows through t, or with t maxTime all
// of them and its sessions, and moves the watermark there.
func (a *Aggregator) closeAll(t int64) {
	if a.pending != nil {
		a.emitPending()
	}
	if a.maxTS == noData {
		return
	}
	a.mergeNewDevices()
	for _, di := range a.order {
		if t == maxTime {
			a.closeDevice(di, floorDiv(a.devices[di].last, a.pane)*a.pane+a.maxSize)
			a.closeSessions(di, maxTime)
		} else {
			a.closeDevice(di, floorDiv(t, a.pane)*a.pane)
		}
	}
	if t == maxTime {
		t = floorDiv(a.maxTS, a.pane)*a.pane + a.maxSize
	}
	a.advance(t, false)
}

// closeDevice delivers device di's windows ending after its closed point
// and at or before target, in (end, metric, spec) order, and folds the
// panes that closed into each series' last event time.
func (a *Aggregator) closeDevice(di uint32, target int64) {
	d := &a.devices[di]
	// Past lastUseful no window of the device can hold data: skip to the
	// target in one step.
	lastUseful := floorDiv(d.last, a.pane)*a.pane + a.maxSize
	for e := d.closed + a.pane; e <= target; e += a.pane {
		jumped := false
		if e > lastUseful && e != target {
			e, jumped = target, true
		}
		a.ending = a.ending[:0]
		for i, s := range a.specs {
			if s.slide != 0 && floorMod(e-s.size, s.slide) == 0 {
				a.ending = append(a.ending, i)
			}
		}
		for j := range int(d.n) {
			sl := *d.slot(j)
			for _, spi := range a.ending {
				a.emit(e, spi, di, sl)
			}
			a.fold(sl.series, e, jumped)
		}
		d.closed = e
	}
	if a.sessions != nil {
		a.closeSessions(di, target)
	}
}

// sweep brings every device up to the shard's floor (and, after an idle
// advance, to its own last event time), then evicts series idle for
// longer than the TTL whose windows were all delivered, and devices left
// with none.
func (a *Aggregator) sweep(idle bool) {
	evictBefore := a.wm - a.ttl
	kept := a.order[:0]
	for _, di := range a.order {
		d := &a.devices[di]
		target := a.floor
		if idle {
			target = max(target, floorDiv(min(d.last, a.wm), a.pane)*a.pane)
		}
		if target > d.closed {
			a.closeDevice(di, target)
		}
		// The series that stay are compacted in one pass.
		n := 0
		for j := range int(d.n) {
			sl := *d.slot(j)
			if a.evictable(sl.series, d, evictBefore) {
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

// evictable reports whether series si of device d had no data since
// evictBefore, every window holding its data was delivered, and the
// Output does not retain it.
func (a *Aggregator) evictable(si uint32, d *device, evictBefore int64) bool {
	s := &a.series[si]
	if s.last >= evictBefore {
		return false
	}
	last := a.seriesLast(si, d)
	if last >= evictBefore {
		return false
	}
	if last != noData && floorDiv(last, a.pane)*a.pane+a.maxSize > d.closed {
		return false // a window holding its data is still open
	}
	if a.sessions != nil && a.sessionOpen(si) {
		return false
	}
	return !a.out.Retain(makeHandle(si, s.gen))
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
	if e-sp.size < a.specFrom[spi] {
		return // a spec added by a restore: its earlier panes are gone
	}
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
	a.markReset(si)
	for off := int64(0); off < a.ring; off++ {
		*a.paneOf(si, off) = pane{}
		if a.sketches != nil {
			a.sketches[int64(si)*a.ring+off].Clear()
		}
	}
	if a.sessions != nil {
		clear(a.open[int(si)*len(a.sessions) : int(si+1)*len(a.sessions)])
	}
	a.freeSeries = append(a.freeSeries, si)
	a.liveSeries--
	a.stats.Evicted++
	a.releaseMetric(sl.metric)
}

func (a *Aggregator) evictDevice(di uint32) {
	d := &a.devices[di]
	a.devs.remove(a.devs.hashString(d.id), di)
	d.id, d.idLen = "", 0 // so that is matches no id
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
			info.Series, info.Metric, info.Last = makeHandle(sl.series, s.gen), a.metricNames[sl.metric], a.seriesLast(sl.series, d)
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
