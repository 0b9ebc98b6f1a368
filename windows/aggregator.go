package windows

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/tapline/tapline/schemas"
)

// Options configure an Aggregator. The zero value of a field means its
// default.
type Options struct {
	// Specs are the windows computed for every series. At least one.
	Specs []Spec
	// AllowedLateness is how far behind the largest event time seen a
	// record may be and still count. Default 0.
	AllowedLateness time.Duration
	// IdleTimeout is how long (wall clock) the shard may receive nothing
	// before Tick advances the watermark with the wall clock. 0 disables it.
	IdleTimeout time.Duration
	// SeriesTTL evicts a series after this much event time without data.
	// Default 1h.
	SeriesTTL time.Duration
	// MaxSeries bounds live (device, metric) series; records that would
	// create more are refused. Default 10,000,000.
	MaxSeries int
	// Quantiles keeps a DDSketch (1% relative accuracy) per pane so windows
	// report p50, p90 and p99. It costs about 30 ns per value and a few
	// hundred bytes per pane.
	Quantiles bool
}

// Defaults.
const (
	DefaultSeriesTTL = time.Hour
	DefaultMaxSeries = 10_000_000
)

// Validate reports the first problem with o.
func (o Options) Validate() error {
	if len(o.Specs) == 0 {
		return errors.New("windows: at least one window spec is required")
	}
	seen := map[string]bool{}
	for _, s := range o.Specs {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("windows: %w", err)
		}
		if seen[s.Name] {
			return fmt.Errorf("windows: window %q is listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	switch {
	case o.AllowedLateness < 0 || o.AllowedLateness%time.Millisecond != 0:
		return fmt.Errorf("windows: allowed lateness %v must be whole non-negative milliseconds", o.AllowedLateness)
	case o.IdleTimeout < 0:
		return fmt.Errorf("windows: idle timeout %v is negative", o.IdleTimeout)
	case o.SeriesTTL < 0:
		return fmt.Errorf("windows: series TTL %v is negative", o.SeriesTTL)
	case o.MaxSeries < 0:
		return fmt.Errorf("windows: max series %d is negative", o.MaxSeries)
	}
	return nil
}

// Class is how Add classified a record.
type Class uint8

// Classes of records, counted in Stats.
const (
	InOrder     Class = iota // at or after the device's latest event time
	OutOfOrder               // behind the device's latest, but its windows are open
	Late                     // its windows are closed: not aggregated
	SeriesLimit              // would exceed Options.MaxSeries: not aggregated
)

func (c Class) String() string {
	return [...]string{"in_order", "out_of_order", "late", "series_limit"}[c]
}

// Handle identifies a series or a device while it is live. Handles of
// evicted series are reused with a new generation, so a stale handle never
// equals a live one.
type Handle uint64

func makeHandle(idx, gen uint32) Handle { return Handle(gen)<<32 | Handle(idx) }

// Index is the slot of the handle, dense from 0, for slice-indexed state.
func (h Handle) Index() uint32 { return uint32(h) }

// Window is a closed window of one series. The Aggregator reuses it: an
// Output must copy what it keeps.
type Window struct {
	Spec       *Spec
	SpecIndex  int   // index in Options.Specs
	Start, End int64 // event time, Unix ms, [Start, End)
	Series     Handle
	Device     Handle
	DeviceID   string // interned: safe to keep
	Metric     string // interned: safe to keep
	Agg
	// Sketch holds the window's values when Options.Quantiles is set; nil
	// otherwise. Valid during the Output call only.
	Sketch *ddsketch.DDSketch
}

// Quantile returns the q-quantile (0..1) from the window's sketch, or NaN
// without one.
func (w *Window) Quantile(q float64) float64 {
	if w.Sketch == nil || w.Sketch.IsEmpty() {
		return math.NaN()
	}
	v, err := w.Sketch.GetValueAtQuantile(q)
	if err != nil {
		return math.NaN()
	}
	return v
}

// Output receives what an Aggregator produces, on the aggregator's
// goroutine and in order.
type Output interface {
	// Window is called once per closed window that holds data, in
	// (end, device, metric, spec) order.
	Window(w *Window)
	// Watermark is called after the watermark advanced to wm and every
	// window ending at or before it was delivered.
	Watermark(wm int64)
	// Retain reports whether an idle series must be kept although its TTL
	// passed (for example while an alert on it is firing).
	Retain(series Handle) bool
}

// Stats count what an Aggregator did. Read them on the owning goroutine.
type Stats struct {
	InOrder, OutOfOrder, Late, SeriesLimit uint64 // records by Class
	Windows                                uint64 // windows delivered
	Evicted                                uint64 // series evicted after their TTL
	IdleAdvances                           uint64 // watermark moves made by Tick
}

const noData = math.MinInt64

type spec struct {
	size, slide int64 // ms
}

type device struct {
	id    string
	slots []slot  // the device's series, sorted by metric name
	hint  []uint8 // record position -> likely index in slots
	last  int64   // largest event time seen
	gen   uint32
	live  bool
}

type slot struct {
	metric uint32
	series uint32
}

type seriesMeta struct {
	device uint32
	metric uint32
	gen    uint32
	live   bool
	last   int64 // largest event time seen
}

// Aggregator computes windows for one shard. Create it with New.
type Aggregator struct {
	opts       Options
	out        Output
	specs      []spec
	pane       int64 // pane length, ms
	ring       int64 // panes kept per series
	maxSize    int64
	lateness   int64
	ttl        int64
	maxSeries  int
	liveSeries int

	devIndex    map[string]uint32
	devices     []device
	freeDevices []uint32
	order       []uint32 // live devices sorted by id
	newDevices  []uint32 // created since order was last merged

	metricIndex map[string]uint32
	metricNames []string

	series     []seriesMeta
	freeSeries []uint32
	panes      []Agg // ring panes, series i owns panes[i*ring:(i+1)*ring]
	sketches   []*ddsketch.DDSketch

	maxTS    int64 // largest event time seen, noData before the first record
	wm       int64 // watermark, never decreases
	closed   int64 // every window ending at or before closed was delivered
	active   bool  // records arrived since the last Tick
	lastTick time.Time

	win    Window
	merged *ddsketch.DDSketch
	ending []int // scratch: specs with a window ending at the boundary
	stats  Stats
}

// New returns an Aggregator that delivers to out. It starts nothing.
func New(opts Options, out Output) (*Aggregator, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.SeriesTTL == 0 {
		opts.SeriesTTL = DefaultSeriesTTL
	}
	if opts.MaxSeries == 0 {
		opts.MaxSeries = DefaultMaxSeries
	}
	a := &Aggregator{
		opts:        opts,
		out:         out,
		lateness:    opts.AllowedLateness.Milliseconds(),
		ttl:         opts.SeriesTTL.Milliseconds(),
		maxSeries:   opts.MaxSeries,
		devIndex:    map[string]uint32{},
		metricIndex: map[string]uint32{},
		maxTS:       noData,
		wm:          noData,
	}
	for _, s := range opts.Specs {
		sp := spec{size: s.Size.Milliseconds(), slide: s.Slide.Milliseconds()}
		a.specs = append(a.specs, sp)
		a.pane = gcd(a.pane, gcd(sp.size, sp.slide))
		a.maxSize = max(a.maxSize, sp.size)
	}
	// Live panes of a series span from the first pane of the oldest open
	// window to the pane of the largest event time: see DESIGN.md.
	a.ring = a.lateness/a.pane + 1 + a.maxSize/a.pane
	if opts.Quantiles {
		var err error
		if a.merged, err = newSketch(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func newSketch() (*ddsketch.DDSketch, error) {
	return ddsketch.LogUnboundedDenseDDSketch(0.01)
}

// Add aggregates one decoded record and reports its class. Late and
// SeriesLimit records are not aggregated; the caller routes them to the
// dead-letter store. Add may deliver windows to the Output first, when the
// record moves the watermark past window ends.
func (a *Aggregator) Add(deviceID []byte, ts int64, metrics []schemas.Metric) Class {
	a.active = true
	if ts > a.maxTS {
		if a.maxTS == noData {
			a.closed = floorDiv(ts-a.lateness, a.pane) * a.pane
		}
		a.maxTS = ts
		a.advance(ts - a.lateness)
	}
	p := floorDiv(ts, a.pane)
	start := p * a.pane
	if start+a.pane <= a.closed {
		a.stats.Late++
		return Late
	}
	di, ok := a.devIndex[string(deviceID)]
	if !ok {
		if a.liveSeries+len(metrics) > a.maxSeries {
			a.stats.SeriesLimit++
			return SeriesLimit
		}
		di = a.newDevice(deviceID)
	}
	d := &a.devices[di]
	if a.liveSeries+len(metrics) > a.maxSeries && !a.hasAll(d, metrics) {
		a.stats.SeriesLimit++
		return SeriesLimit
	}
	class := InOrder
	if ts < d.last {
		class = OutOfOrder
		a.stats.OutOfOrder++
	} else {
		d.last = ts
		a.stats.InOrder++
	}
	off := floorMod(p, a.ring)
	end := start + a.pane
	for k := range metrics {
		si := a.seriesOf(di, k, metrics[k].Name)
		pn := &a.panes[int64(si)*a.ring+off]
		if pn.Count != 0 && (pn.FirstTS < start || pn.FirstTS >= end) {
			pn.Count = 0 // a pane from an older, closed span: start afresh
			if a.sketches != nil {
				a.sketches[int64(si)*a.ring+off].Clear()
			}
		}
		pn.Add(ts, metrics[k].Value)
		if a.sketches != nil {
			_ = a.sketches[int64(si)*a.ring+off].Add(metrics[k].Value)
		}
		if s := &a.series[si]; ts > s.last {
			s.last = ts
		}
	}
	return class
}

// seriesOf returns the series of metric name, the k-th metric of a record
// of device di, creating it if needed. Devices send their metrics in a
// stable order, so the hint for position k almost always hits and no map is
// consulted.
func (a *Aggregator) seriesOf(di uint32, k int, name []byte) uint32 {
	d := &a.devices[di]
	if k < len(d.hint) {
		if h := int(d.hint[k]); h < len(d.slots) && a.metricNames[d.slots[h].metric] == string(name) {
			return d.slots[h].series
		}
	}
	j, found := a.findSlot(d, name)
	if !found {
		a.newSeries(di, j, name)
		d = &a.devices[di]
	}
	if k < 255 && j < 255 {
		for len(d.hint) <= k {
			d.hint = append(d.hint, 0)
		}
		d.hint[k] = uint8(j)
	}
	return d.slots[j].series
}

// findSlot binary-searches d's slots for name: the index, or where it
// belongs.
func (a *Aggregator) findSlot(d *device, name []byte) (int, bool) {
	lo, hi := 0, len(d.slots)
	for lo < hi {
		m := (lo + hi) / 2
		if a.metricNames[d.slots[m].metric] < string(name) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(d.slots) && a.metricNames[d.slots[lo].metric] == string(name)
}

func (a *Aggregator) hasAll(d *device, metrics []schemas.Metric) bool {
	for k := range metrics {
		if _, ok := a.findSlot(d, metrics[k].Name); !ok {
			return false
		}
	}
	return true
}

func (a *Aggregator) newDevice(id []byte) uint32 {
	var di uint32
	if n := len(a.freeDevices); n > 0 {
		di = a.freeDevices[n-1]
		a.freeDevices = a.freeDevices[:n-1]
	} else {
		di = uint32(len(a.devices))
		a.devices = append(a.devices, device{})
	}
	d := &a.devices[di]
	d.id = string(id)
	d.slots, d.hint = d.slots[:0], d.hint[:0]
	d.last = noData
	d.gen++
	d.live = true
	a.devIndex[d.id] = di
	a.newDevices = append(a.newDevices, di)
	return di
}

func (a *Aggregator) newSeries(di uint32, at int, name []byte) {
	mi, ok := a.metricIndex[string(name)]
	if !ok {
		mi = uint32(len(a.metricNames))
		a.metricNames = append(a.metricNames, string(name))
		a.metricIndex[a.metricNames[mi]] = mi
	}
	var si uint32
	if n := len(a.freeSeries); n > 0 {
		si = a.freeSeries[n-1]
		a.freeSeries = a.freeSeries[:n-1]
	} else {
		si = uint32(len(a.series))
		a.series = append(a.series, seriesMeta{})
		a.panes = append(a.panes, make([]Agg, a.ring)...)
		if a.opts.Quantiles {
			for range a.ring {
				sk, _ := newSketch() // only fails for a bad accuracy constant
				a.sketches = append(a.sketches, sk)
			}
		}
	}
	s := &a.series[si]
	s.device, s.metric, s.live, s.last = di, mi, true, noData
	s.gen++
	a.liveSeries++
	d := &a.devices[di]
	d.slots = append(d.slots, slot{})
	copy(d.slots[at+1:], d.slots[at:])
	d.slots[at] = slot{metric: mi, series: si}
}

// Tick tells the Aggregator the wall-clock time. The pipeline calls it
// after every batch of records and periodically while none arrive. After
// Options.IdleTimeout without records, the watermark advances as if event
// time kept pace with the wall clock.
func (a *Aggregator) Tick(now time.Time) {
	if a.active || a.lastTick.IsZero() {
		a.active = false
		a.lastTick = now
		return
	}
	if a.opts.IdleTimeout <= 0 || a.maxTS == noData {
		return
	}
	idle := now.Sub(a.lastTick)
	if idle < a.opts.IdleTimeout {
		return
	}
	before := a.wm
	a.advance(a.maxTS + idle.Milliseconds() - a.lateness)
	if a.wm > before {
		a.stats.IdleAdvances++
	}
}

// Watermark returns the current watermark (Unix ms); math.MinInt64 before
// the first record.
func (a *Aggregator) Watermark() int64 { return a.wm }

// Stats returns the counters.
func (a *Aggregator) Stats() Stats { return a.stats }

// LiveSeries returns the number of live (device, metric) series.
func (a *Aggregator) LiveSeries() int { return a.liveSeries }

// Specs returns the window specs, in configuration order.
func (a *Aggregator) Specs() []Spec { return a.opts.Specs }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
