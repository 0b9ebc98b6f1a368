package windows

import "github.com/tapline/tapline/schemas"

// Session windows: a keg's pour, a machine's run, a vehicle's trip are
// sessions, activity separated by silence. A series' session lasts while
// its records come less than the spec's gap apart; it is over when its
// device's watermark (or a record of the series) passes its last record
// by the gap, and is delivered as a Window from its first record to its
// last plus the gap (as Flink's session windows are), with the usual
// aggregates; its duration is LastTS - FirstTS.
//
// Each series keeps one open session per session spec (an Agg, 80
// bytes), not panes: sessions have no boundaries to align to. A record
// within the gap of the open session, before or after it, joins it; one
// more than the gap after it closes it and starts the next. One more than
// the gap before it (out of order by more than the gap, which needs a
// lateness longer than the gap) belongs to a session already delivered
// and is left out of sessions (counted in Stats.SessionStray; the other
// windows have it). A device's backlog builds its sessions as its live
// records do, since each device keeps its own time. Sessions are not
// merged across shards: after a reshard the parent's last session and the
// child's first may be one session cut in two, which analysts merge as
// they merge other windows (rows of a series whose [start, end) overlap).

type sessionSpec struct {
	index int   // in Options.Specs
	gap   int64 // ms
}

// addSessions adds a record of device di (its series sis) to their open
// sessions, delivering those it proves over.
func (a *Aggregator) addSessions(di uint32, ts int64, sis []uint32, metrics []schemas.Metric) {
	n := len(a.sessions)
	for k, si := range sis {
		for j, ss := range a.sessions {
			st := &a.open[int(si)*n+j]
			if st.Count > 0 && ts > st.LastTS+ss.gap {
				a.emitSession(di, si, j)
			}
			if st.Count > 0 && ts < st.FirstTS-ss.gap {
				a.stats.SessionStray++
				continue
			}
			st.Add(ts, metrics[k].Value)
		}
	}
}

// closeSessions delivers device di's sessions that end (last record plus
// gap) at or before upTo.
func (a *Aggregator) closeSessions(di uint32, upTo int64) {
	d := &a.devices[di]
	n := len(a.sessions)
	for j := range int(d.n) {
		si := d.slot(j).series
		for k, ss := range a.sessions {
			if st := &a.open[int(si)*n+k]; st.Count > 0 && (upTo == maxTime || st.LastTS+ss.gap <= upTo) {
				a.emitSession(di, si, k)
			}
		}
	}
}

// maxTime closes every session.
const maxTime = 1<<63 - 1

// emitSession delivers series si's open session for spec k and clears it.
func (a *Aggregator) emitSession(di, si uint32, k int) {
	st := &a.open[int(si)*len(a.sessions)+k]
	ss := a.sessions[k]
	w := &a.win
	w.Agg, w.Sketch = *st, nil
	w.Spec, w.SpecIndex = &a.opts.Specs[ss.index], ss.index
	w.Start, w.End = st.FirstTS, st.LastTS+ss.gap
	w.Series = makeHandle(si, a.series[si].gen)
	w.Device = makeHandle(di, a.devices[di].gen)
	w.DeviceID = a.devices[di].id
	w.Metric = a.metricNames[a.metricOf(di, si)]
	*st = Agg{}
	a.stats.Windows++
	a.out.Window(w)
}

// metricOf returns the metric index of series si of device di.
func (a *Aggregator) metricOf(di, si uint32) uint32 {
	d := &a.devices[di]
	for j := range int(d.n) {
		if sl := d.slot(j); sl.series == si {
			return sl.metric
		}
	}
	return 0 // not reached: si is one of di's
}

// sessionOpen reports whether series si has an open session.
func (a *Aggregator) sessionOpen(si uint32) bool {
	n := len(a.sessions)
	for _, st := range a.open[int(si)*n : int(si+1)*n] {
		if st.Count > 0 {
			return true
		}
	}
	return false
}
