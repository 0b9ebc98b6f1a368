package windows

import (
	"errors"
	"fmt"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/tapline/tapline/windows/wire"
)

// snapshotMagic starts every aggregator snapshot; bump it when the format
// changes. Version 1 (one watermark for the shard) still restores.
const (
	snapshotMagic   = "tapline.windows/2"
	snapshotMagicV1 = "tapline.windows/1"
)

// ErrIncompatible is returned by Restore for a snapshot taken with other
// window options (specs, lateness or quantiles): its panes mean something
// else under the current options.
var ErrIncompatible = errors.New("windows: snapshot was taken with different window options")

// AppendSnapshot appends the Aggregator's state to b: everything that
// decides its future output (watermark, live devices and series with
// their handles, open panes and sketches), and nothing that depends on
// the process (hash seeds, wall-clock ticks). Equal states give equal
// bytes. The pipeline writes one next to each checkpoint, so a shard
// resumes exactly where its last durable batch left off.
func (a *Aggregator) AppendSnapshot(b []byte) []byte {
	w := wire.Writer{B: b}
	w.String(snapshotMagic)
	a.appendHead(&w)
	w.Uint(uint64(len(a.series)))
	for si := range a.series {
		s := &a.series[si]
		w.Uint(uint64(s.gen))
		w.Int(s.last)
		a.appendPanes(&w, uint32(si), false)
	}
	a.appendTail(&w)
	return w.B
}

// appendHead writes what a snapshot holds before the series: options,
// watermarks, metric names and devices.
func (a *Aggregator) appendHead(w *wire.Writer) {
	a.fingerprint(w)
	w.Int(a.maxTS)
	w.Int(a.wm)
	w.Int(a.closed)
	w.Int(a.floor)
	w.Uint(uint64(len(a.metricNames)))
	for _, n := range a.metricNames {
		w.String(n)
	}
	w.Uint(uint64(len(a.devices)))
	for i := range a.devices {
		d := &a.devices[i]
		w.Uint(uint64(d.gen))
		w.String(d.id) // "" for a free slot
		if d.id == "" {
			continue
		}
		w.Int(d.last)
		w.Int(d.closed)
		w.Bool(d.bySeq)
		for _, v := range d.recent {
			w.Uint(v)
		}
		w.B = append(w.B, d.hint[:]...)
		w.Uint(uint64(d.n))
		for j := range int(d.n) {
			s := d.slot(j)
			w.Uint(uint64(s.metric))
			w.Uint(uint64(s.series))
		}
	}
	for _, list := range [][]uint32{a.freeDevices, a.order, a.newDevices} {
		w.Uint(uint64(len(list)))
		for _, v := range list {
			w.Uint(uint64(v))
		}
	}
}

// appendPanes writes series si's open panes: all of them, or with
// changed only those that may have changed since the last snapshot of
// changes (changes.go).
func (a *Aggregator) appendPanes(w *wire.Writer, si uint32, changed bool) {
	from := a.series[si].from
	n := 0
	for off := range a.ring {
		if p := a.paneOf(si, off); p.count > 0 && (!changed || int32(p.epoch-from) >= 0) {
			n++
		}
	}
	w.Uint(uint64(n))
	var sk []byte
	for off := range a.ring {
		p := a.paneOf(si, off)
		if p.count == 0 || changed && int32(p.epoch-from) < 0 {
			continue
		}
		w.Uint(uint64(off))
		w.Uint(uint64(p.epoch))
		w.Uint(uint64(p.count))
		for _, v := range [...]float64{p.sum, p.min, p.max, p.m2, p.first, p.last} {
			w.Float(v)
		}
		w.Int(int64(p.firstAt))
		w.Int(int64(p.lastAt))
		if a.sketches != nil {
			sk = sk[:0]
			a.sketches[int64(si)*a.ring+off].Encode(&sk, true)
			w.Bytes(sk)
		}
	}
}

// appendTail writes what a snapshot holds after the series: the free
// series, open sessions and pending windows.
func (a *Aggregator) appendTail(w *wire.Writer) {
	w.Uint(uint64(len(a.freeSeries)))
	for _, v := range a.freeSeries {
		w.Uint(uint64(v))
	}
	w.Uint(uint64(a.liveSeries))
	for i := range len(a.series) * len(a.sessions) { // open sessions
		st := &a.open[i]
		w.Uint(uint64(st.Count))
		if st.Count == 0 {
			continue
		}
		for _, v := range [...]float64{st.Sum, st.Min, st.Max, st.Mean, st.M2, st.First, st.Last} {
			w.Float(v)
		}
		w.Int(st.FirstTS)
		w.Int(st.LastTS)
	}
	for _, from := range a.specFrom {
		w.Int(from)
	}
	w.Uint(uint64(len(a.pending)))
	for i := range a.pending {
		pw := &a.pending[i]
		w.String(pw.spec.Name)
		w.Int(pw.w.Start)
		w.Int(pw.w.End)
		w.String(pw.w.DeviceID)
		w.String(pw.w.Metric)
		ag := &pw.w.Agg
		w.Int(ag.Count)
		for _, v := range [...]float64{ag.Sum, ag.Min, ag.Max, ag.Mean, ag.M2, ag.First, ag.Last} {
			w.Float(v)
		}
		w.Int(ag.FirstTS)
		w.Int(ag.LastTS)
	}
}

// fingerprint writes what a snapshot's meaning depends on.
func (a *Aggregator) fingerprint(w *wire.Writer) {
	w.Uint(uint64(len(a.opts.Specs)))
	for _, s := range a.opts.Specs {
		w.String(s.Name)
		w.Int(s.Size.Milliseconds())
		w.Int(s.Slide.Milliseconds())
	}
	w.Int(a.lateness)
	w.Bool(a.opts.Quantiles)
}

// Restore loads a snapshot from AppendSnapshot into a new Aggregator (one
// that has seen no record) and returns the bytes after it. A snapshot
// from other options fails with ErrIncompatible.
func (a *Aggregator) Restore(b []byte) ([]byte, error) {
	if a.maxTS != noData || len(a.devices) > 0 {
		return nil, errors.New("windows: Restore needs a new Aggregator")
	}
	r := wire.Reader{B: b}
	m := r.String()
	v1 := m == snapshotMagicV1
	if m != snapshotMagic && !v1 {
		return nil, fmt.Errorf("windows: not a windows snapshot (%q)", m)
	}
	var want wire.Writer
	a.fingerprint(&want)
	if len(r.B) < len(want.B) || string(r.B[:len(want.B)]) != string(want.B) {
		return a.restoreChanged(b)
	}
	r.B = r.B[len(want.B):]
	a.maxTS, a.wm, a.closed = r.Int(), r.Int(), r.Int()
	if v1 {
		// Every device's windows closed with the shard's.
		a.floor = a.closed
	} else {
		a.floor = r.Int()
	}
	for range r.Len(1) {
		n := r.String()
		if n != "" { // "" is a released index
			a.metricIndex[n] = uint32(len(a.metricNames))
		}
		a.metricNames = append(a.metricNames, n)
		a.metricKeys = append(a.metricKeys, makeNameKey(n))
	}
	nm := uint64(len(a.metricNames))
	a.metricRefs = make([]uint32, nm)
	a.devices = make([]device, r.Len(2))
	var slots []slot // checked against the series count below
	for i := range a.devices {
		d := &a.devices[i]
		d.gen = uint32(r.Uint())
		d.id = r.String()
		if d.id == "" {
			continue
		}
		d.last = r.Int()
		if d.closed = a.floor; !v1 {
			d.closed = r.Int()
			d.bySeq = r.Bool()
			for k := range d.recent {
				d.recent[k] = r.Uint()
			}
		}
		if len(r.B) < len(d.hint) {
			r.Fail("short device")
			break
		}
		copy(d.hint[:], r.B)
		r.B = r.B[len(d.hint):]
		d.idLen = 0xff
		if len(d.id) <= len(d.short) {
			d.idLen = uint8(copy(d.short[:], d.id))
		}
		for range r.Len(2) {
			s := slot{metric: uint32(r.Uint()), series: uint32(r.Uint())}
			if uint64(s.metric) >= nm || a.metricNames[s.metric] == "" {
				r.Fail("metric index %d out of range", s.metric)
				break
			}
			if int(d.n) == maxSeriesPerDevice {
				r.Fail("device %q has more than %d series", d.id, maxSeriesPerDevice)
				break
			}
			a.metricRefs[s.metric]++
			d.insertSlot(int(d.n), s)
			slots = append(slots, s)
		}
		a.devs.insert(a.devs.hashString(d.id), uint32(i))
	}
	lists := [3][]uint32{}
	for k := range lists {
		for range r.Len(1) {
			v := r.Uint()
			if v >= uint64(len(a.devices)) {
				r.Fail("device index %d out of range", v)
			}
			lists[k] = append(lists[k], uint32(v))
		}
	}
	a.freeDevices, a.order, a.newDevices = lists[0], lists[1], lists[2]
	ns := r.Len(2)
	a.series = make([]seriesMeta, ns)
	for range (ns + chunkSize - 1) / chunkSize {
		a.chunks = append(a.chunks, make([]pane, a.ring<<chunkBits))
	}
	if a.opts.Quantiles {
		a.sketches = make([]*ddsketch.DDSketch, 0, int64(ns)*a.ring)
		for range int64(ns) * a.ring {
			sk, _ := newSketch()
			a.sketches = append(a.sketches, sk)
		}
	}
	for si := range a.series {
		a.series[si].gen = uint32(r.Uint())
		a.series[si].last = r.Int()
		for range r.Len(2) {
			off := r.Uint()
			if off >= uint64(a.ring) {
				r.Fail("pane offset %d out of range", off)
				break
			}
			p := a.paneOf(uint32(si), int64(off))
			p.epoch, p.count = uint32(r.Uint()), uint32(r.Uint())
			p.sum, p.min, p.max, p.m2, p.first, p.last = r.Float(), r.Float(), r.Float(), r.Float(), r.Float(), r.Float()
			p.firstAt, p.lastAt = int32(r.Int()), int32(r.Int())
			if a.sketches != nil {
				if err := a.sketches[int64(si)*a.ring+int64(off)].DecodeAndMergeWith(r.Bytes()); err != nil {
					r.Fail("sketch: %v", err)
				}
			}
		}
	}
	for _, s := range slots {
		if int(s.series) >= ns {
			r.Fail("series index %d out of range", s.series)
		}
	}
	for range r.Len(1) {
		v := r.Uint()
		if v >= uint64(ns) {
			r.Fail("series index %d out of range", v)
		}
		a.freeSeries = append(a.freeSeries, uint32(v))
	}
	a.liveSeries = int(r.Uint())
	if len(a.sessions) > 0 {
		a.open = make([]Agg, ns*len(a.sessions))
		for i := range a.open {
			st := &a.open[i]
			if st.Count = int64(r.Uint()); st.Count == 0 {
				continue
			}
			st.Sum, st.Min, st.Max, st.Mean, st.M2, st.First, st.Last = r.Float(), r.Float(), r.Float(), r.Float(), r.Float(), r.Float(), r.Float()
			st.FirstTS, st.LastTS = r.Int(), r.Int()
			if r.Err() != nil {
				break
			}
		}
	}
	if !v1 {
		for i := range a.specFrom {
			a.specFrom[i] = r.Int()
		}
		for range r.Len(8) {
			name := r.String()
			sp, err := ParseSpec(name)
			if err != nil {
				r.Fail("pending window of spec %q: %v", name, err)
				break
			}
			pw := pendingWindow{spec: sp}
			w := &pw.w
			w.Start, w.End, w.DeviceID, w.Metric = r.Int(), r.Int(), r.String(), r.String()
			ag := &w.Agg
			ag.Count = r.Int()
			ag.Sum, ag.Min, ag.Max, ag.Mean, ag.M2, ag.First, ag.Last = r.Float(), r.Float(), r.Float(), r.Float(), r.Float(), r.Float(), r.Float()
			ag.FirstTS, ag.LastTS = r.Int(), r.Int()
			a.pending = append(a.pending, pw)
		}
	}
	for mi := range a.metricNames {
		if a.metricRefs[mi] == 0 {
			// Released, or (in a snapshot from before names were
			// released) no longer used.
			delete(a.metricIndex, a.metricNames[mi])
			a.metricNames[mi], a.metricKeys[mi] = "", nameKey{}
			a.freeMetrics.push(uint32(mi))
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("windows: restore: %w", err)
	}
	return r.B, nil
}
