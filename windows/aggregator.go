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
// default. The yaml tags are the service's configuration keys.
type Options struct {
	// Specs are the windows computed for every series. At least one.
	Specs []Spec `yaml:"windows"`
	// AllowedLateness is how far behind its device's largest event time
	// a record may be and still count. Default 0.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// MaxBacklog is how far behind the shard's watermark a device's
	// records may be and still count: a device that comes back with a
	// backlog this old has it aggregated. It is also how long the last
	// open window of a device that fell silent waits for it before it is
	// delivered (see the package doc). Default 24h.
	MaxBacklog time.Duration `yaml:"max_backlog"`
	// IdleTimeout is how long (wall clock) the shard may receive nothing
	// before Tick advances the watermark with the wall clock. 0 disables it.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// SeriesTTL evicts a series after this much event time without data.
	// Default 1h.
	SeriesTTL time.Duration `yaml:"series_ttl"`
	// MaxSeries bounds live (device, metric) series; records that would
	// create more are refused. Default 10,000,000.
	MaxSeries int `yaml:"max_series"`
	// MaxSeriesPerDevice bounds one device's live series, so one device
	// (a compromised one, or firmware that puts a counter in a metric
	// name) cannot take the shard's memory: records that would create
	// more are refused. Default 1,024; at most 65,535.
	MaxSeriesPerDevice int `yaml:"max_series_per_device"`
	// ExpectedDevices sizes the device table up front for this many
	// devices, instead of growing it (copying every device each time it
	// doubles) as they arrive: creating the state of a fleet that turns
	// up at once, a new shard's or a one-off job's, costs about a tenth
	// less (BenchmarkVersusDuckDB at 100k devices). Default 0: grow.
	// A hint only; it bounds nothing.
	ExpectedDevices int `yaml:"expected_devices"`
	// Quantiles keeps a DDSketch (1% relative accuracy) per pane so windows
	// report p50, p90 and p99. It costs time per value and memory per
	// pane: measure with BenchmarkLoop before turning it on.
	Quantiles bool `yaml:"quantiles"`
}

// Defaults.
const (
	DefaultSeriesTTL          = time.Hour
	DefaultMaxSeries          = 10_000_000
	DefaultMaxSeriesPerDevice = 1024
	DefaultMaxBacklog         = 24 * time.Hour
	maxBacklog                = 30 * 24 * time.Hour // pane epochs are 32 bits: see paneNum
	maxSeriesPerDevice        = math.MaxUint16      // device.n is 16 bits
	maxExpectedDevices        = 1 << 26             // 13 GiB of devices: a typo, not a fleet
)

// EnsureDefaults sets the zero fields that have defaults.
func (o *Options) EnsureDefaults() {
	if o.SeriesTTL == 0 {
		o.SeriesTTL = DefaultSeriesTTL
	}
	if o.MaxSeries == 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.MaxSeriesPerDevice == 0 {
		o.MaxSeriesPerDevice = DefaultMaxSeriesPerDevice
	}
	if o.MaxBacklog == 0 {
		o.MaxBacklog = DefaultMaxBacklog
	}
}

// Validate reports every problem, one per line, each naming its
// configuration key.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(o.Specs) == 0 {
		bad("windows: at least one window spec is required")
	}
	seen := map[string]bool{}
	for _, s := range o.Specs {
		if err := s.Validate(); err != nil {
			bad("windows: %w", err)
		}
		if seen[s.Name] {
			bad("windows: window %q is listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	if o.AllowedLateness < 0 || o.AllowedLateness%time.Millisecond != 0 {
		bad("allowed_lateness: %v must be whole non-negative milliseconds", o.AllowedLateness)
	}
	if o.MaxBacklog < 0 || o.MaxBacklog%time.Millisecond != 0 || o.MaxBacklog > maxBacklog {
		bad("max_backlog: %v must be whole non-negative milliseconds up to %v", o.MaxBacklog, maxBacklog)
	}
	if o.IdleTimeout < 0 {
		bad("idle_timeout: %v is negative", o.IdleTimeout)
	}
	if o.SeriesTTL < 0 {
		bad("series_ttl: %v is negative", o.SeriesTTL)
	}
	if o.MaxSeries < 0 {
		bad("max_series: %d is negative", o.MaxSeries)
	}
	if o.ExpectedDevices < 0 || o.ExpectedDevices > maxExpectedDevices {
		bad("expected_devices: %d is not between 0 and %d", o.ExpectedDevices, maxExpectedDevices)
	}
	if o.MaxSeriesPerDevice < 0 || o.MaxSeriesPerDevice > maxSeriesPerDevice {
		bad("max_series_per_device: %d is not between 0 (the default, %d) and %d", o.MaxSeriesPerDevice, DefaultMaxSeriesPerDevice, maxSeriesPerDevice)
	}
	return errors.Join(errs...)
}

// Class is how Add classified a record.
type Class uint8

// Classes of records, counted in Stats.
const (
	InOrder     Class = iota // at or after the device's latest event time
	OutOfOrder               // behind the device's latest, but its windows are open
	Late                     // its device's windows are closed: not aggregated
	SeriesLimit              // would exceed Options.MaxSeries: not aggregated
	DeviceLimit              // would exceed Options.MaxSeriesPerDevice: not aggregated
	Duplicate                // a redelivery of a record the device sent just before: dropped
)

func (c Class) String() string {
	return [...]string{"in_order", "out_of_order", "late", "series_limit", "device_limit", "duplicate"}[c]
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
	// Window is called once per closed window that holds data: a
	// device's in (end, metric, spec) order (see the package doc).
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
	InOrder, OutOfOrder, Late, SeriesLimit, DeviceLimit, Duplicate uint64 // records by Class
	Windows                                                        uint64 // windows delivered
	Evicted                                                        uint64 // series evicted after their TTL
	IdleAdvances                                                   uint64 // watermark moves made by Tick
	SessionStray                                                   uint64 // values left out of sessions: see session.go
}

const noData = math.MinInt64

type spec struct {
	size, slide int64 // ms
}

// device is one live device. Its id (up to 32 bytes) and first eight
// series are inline, so the hot path finds everything about a device in
// the first two of its three cache lines (everything up to inl; the
// padding keeps devices aligned to lines in the slice). The hash of its
// id is not kept: the device table recomputes it when it grows.
type device struct {
	closed int64 // every window of the device ending at or before closed was delivered
	last   int64 // largest event time aggregated
	gen    uint32
	idLen  uint8 // len(id) when it fits in short; 0xff otherwise
	bySeq  bool  // recent holds a sequence window, not fingerprints
	n      uint16
	hint   [8]uint8 // record position -> likely slot
	short  [32]byte
	inl    [8]slot // slots 0-7, sorted by metric name with more
	id     string
	more   []slot // slots 8 and up
	// recent remembers what the device sent last, to drop redeliveries
	// (dedup.go): with sequence numbers the largest and a bitmap of the
	// 64 below it, without them fingerprints of its last three records.
	recent [3]uint64
}

type slot struct {
	metric uint32
	series uint32
}

func (d *device) is(id []byte) bool {
	if len(id) <= len(d.short) {
		return int(d.idLen) == len(id) && string(d.short[:len(id)]) == string(id)
	}
	return d.id == string(id)
}

func (d *device) slot(i int) *slot {
	if i < len(d.inl) {
		return &d.inl[i]
	}
	return &d.more[i-len(d.inl)]
}

func (d *device) insertSlot(at int, s slot) {
	if int(d.n) >= len(d.inl) {
		d.more = append(d.more, slot{})
	}
	for k := int(d.n); k > at; k-- {
		*d.slot(k) = *d.slot(k - 1)
	}
	*d.slot(at) = s
	d.n++
}

// truncate keeps the first n slots.
func (d *device) truncate(n int) {
	d.more = d.more[:max(n-len(d.inl), 0)]
	d.n = uint16(n)
}

// seriesMeta is what a series needs beyond its slot in its device: the
// generation of its handle and its last event time.
type seriesMeta struct {
	gen uint32
	// from is the pane number (low 32 bits) before which none of the
	// series' panes has changed since the last snapshot of changes: its
	// device's closed panes then (changes.go).
	from uint32
	last int64 // largest event time in closed panes
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

	devs        devTable
	devices     []device
	freeDevices []uint32
	order       []uint32 // live devices sorted by id
	newDevices  []uint32 // created since order was last merged

	// Metric names are interned while a live series uses them: refs
	// counts the series, and a name no series uses is released (its index
	// goes to freeMetrics, which hands out the lowest first, whatever the
	// order of release, so a restored shard interns as the live one does).
	metricIndex map[string]uint32
	metricNames []string  // "" for a released index
	metricKeys  []nameKey // metricKeys[i] is metricNames[i] for fast compares
	metricRefs  []uint32
	freeMetrics freeIndexes

	series     []seriesMeta
	freeSeries []uint32
	chunks     [][]pane             // ring panes by series: see chunkBits
	sketches   []*ddsketch.DDSketch // with Quantiles: series i owns [i*ring, (i+1)*ring)

	maxTS   int64 // largest event time seen, noData before the first record
	wm      int64 // shard watermark, never decreases
	closed  int64 // pane boundary the shard watermark last crossed
	floor   int64 // every device's windows ending at or before floor were delivered
	backlog int64 // Options.MaxBacklog, ms

	lateBound int64 // for the last Late record: its device's windows were closed up to here

	active   bool // records arrived since the last Tick
	lastTick time.Time

	// Snapshots in parts (changes.go): series evicted since the last
	// snapshot of changes (a bitset), whether there is a base, its size
	// and the bytes of panes the changes wrote since.
	reset              []uint64
	based              bool
	baseBytes, written int

	win Window
	sis []uint32 // scratch: the series of a record with many metrics

	lastDevice uint32 // the device of the last record, tried first

	ahead ahead // the devices Prefetch was told of (prefetch.go)

	specFrom []int64         // spec i delivers windows starting at or after specFrom[i] (respec.go)
	pending  []pendingWindow // to deliver at the next call: a removed spec's (respec.go)

	sessions []sessionSpec // the session specs, if any (session.go)
	open     []Agg         // open sessions: series i's for sessions[k] at i*len(sessions)+k
	merged   *ddsketch.DDSketch
	ending   []int // scratch: specs with a window ending at the boundary
	stats    Stats
}

// New returns an Aggregator that delivers to out. It starts nothing.
func New(opts Options, out Output) (*Aggregator, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("windows: %w", err)
	}
	a := &Aggregator{
		opts:        opts,
		out:         out,
		lateness:    opts.AllowedLateness.Milliseconds(),
		ttl:         opts.SeriesTTL.Milliseconds(),
		backlog:     opts.MaxBacklog.Milliseconds(),
		maxSeries:   opts.MaxSeries,
		metricIndex: map[string]uint32{},
		maxTS:       noData,
		wm:          noData,
	}
	for i, s := range opts.Specs {
		a.specFrom = append(a.specFrom, math.MinInt64)
		sp := spec{size: s.Size.Milliseconds(), slide: s.Slide.Milliseconds()}
		a.specs = append(a.specs, sp) // a session's: zero, never ending at a boundary
		if s.Session() {
			a.sessions = append(a.sessions, sessionSpec{index: i, gap: s.Gap.Milliseconds()})
			continue
		}
		a.pane = gcd(a.pane, gcd(sp.size, sp.slide))
		a.maxSize = max(a.maxSize, sp.size)
	}
	if a.pane == 0 { // sessions only: they close at minute boundaries (or finer gaps')
		a.pane = time.Minute.Milliseconds()
		for _, ss := range a.sessions {
			a.pane = gcd(a.pane, ss.gap)
		}
	}
	// Live panes of a series span from the first pane of the oldest open
	// window to the pane of the largest event time: the watermark trails
	// the largest event time by the lateness (lateness/pane panes, plus
	// the one it is in), and the oldest window still open ends after the
	// watermark, so it starts at most maxSize/pane panes before it.
	a.ring = a.lateness/a.pane + 1 + a.maxSize/a.pane
	if a.pane > math.MaxInt32 {
		return nil, fmt.Errorf("windows: pane of %v (the gcd of sizes and slides) exceeds 24 days", time.Duration(a.pane)*time.Millisecond)
	}
	a.devs = newDevTable(func(i uint32) uint64 { return a.devs.hashString(a.devices[i].id) })
	if n := opts.ExpectedDevices; n > 0 {
		a.devices = make([]device, 0, n)
		a.newDevices = make([]uint32, 0, n)
		a.series = make([]seriesMeta, 0, n)
		a.devs.reserve(n)
	}
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

// Add aggregates one decoded record without a sequence number: AddSeq
// with seq -1.
func (a *Aggregator) Add(deviceID []byte, ts int64, metrics []schemas.Metric) Class {
	return a.AddSeq(deviceID, ts, -1, metrics)
}

// AddSeq aggregates one decoded record whose device numbered it seq (-1
// for none) and reports its class. Late, SeriesLimit and DeviceLimit
// records are not aggregated; the caller routes them to the dead-letter
// store. Duplicate records (a redelivery: see dedup.go) are dropped.
// AddSeq may deliver windows to the Output first, when the record moves
// its device's watermark, or the shard's, past window ends.
func (a *Aggregator) AddSeq(deviceID []byte, ts, seq int64, metrics []schemas.Metric) Class {
	a.active = true
	if a.pending != nil {
		a.emitPending()
	}
	if ts > a.maxTS {
		if a.maxTS == noData {
			a.closed = floorDiv(ts-a.lateness, a.pane) * a.pane
			a.floor = floorDiv(ts-a.lateness-a.backlog, a.pane) * a.pane
		}
		a.maxTS = ts
		a.advance(ts-a.lateness, false)
	}
	p := floorDiv(ts, a.pane)
	start := p * a.pane
	if start+a.pane <= a.floor {
		a.stats.Late++
		a.lateBound = a.floor
		return Late
	}
	// The readings of a batched message, and devices that send in
	// bursts, come one after another: try the last record's device first.
	di := a.lastDevice
	if di >= uint32(len(a.devices)) || !a.devices[di].is(deviceID) {
		h := a.devs.hash(deviceID)
		var ok bool
		if di, ok = a.lookup(h, deviceID); !ok {
			if c := a.limit(nil, len(metrics)); c != InOrder {
				return c
			}
			di = a.newDevice(h, deviceID, ts)
		}
		a.lastDevice = di
	}
	d := &a.devices[di]
	// A redelivery is a duplicate even when its window has closed since.
	if seq >= 0 && d.seenSeq(seq) {
		a.stats.Duplicate++
		return Duplicate
	}
	if start+a.pane <= d.closed {
		a.stats.Late++
		a.lateBound = d.closed
		return Late
	}
	if a.liveSeries+len(metrics) > a.maxSeries || int(d.n)+len(metrics) > a.opts.MaxSeriesPerDevice {
		if c := a.limit(d, a.missing(d, metrics)); c != InOrder {
			return c
		}
	}
	// The series of each metric first (a loop with calls, which would
	// spill the pane loop's values), then the panes.
	var inline [len(d.hint)]uint32
	var sis []uint32
	if len(metrics) <= len(d.hint) {
		sis = inline[:len(metrics)]
		keys := a.metricKeys
		for k := range metrics {
			// Devices send their metrics in a stable order, so the slot
			// that held the k-th metric last time almost always holds it
			// again.
			if h := d.hint[k]; h < 8 && uint16(h) < d.n && keys[d.inl[h].metric].quick(metrics[k].Name) {
				sis[k] = d.inl[h].series
			} else {
				sis[k] = a.seriesOf(di, k, metrics[k].Name)
				keys = a.metricKeys
			}
		}
	} else {
		a.sis = a.sis[:0]
		for k := range metrics {
			a.sis = append(a.sis, a.seriesOf(di, k, metrics[k].Name))
		}
		sis = a.sis
	}
	d = &a.devices[di]
	if seq < 0 && d.seenRecord(ts, fingerprint(ts, sis, metrics)) {
		a.stats.Duplicate++
		return Duplicate
	}
	class := InOrder
	if ts < d.last {
		class = OutOfOrder
		a.stats.OutOfOrder++
	} else {
		if ts-a.lateness >= d.closed+a.pane {
			// The device's own watermark crossed a pane boundary: its
			// windows ending before it are complete.
			a.closeDevice(di, floorDiv(ts-a.lateness, a.pane)*a.pane)
			d = &a.devices[di]
		}
		d.last = ts
		a.stats.InOrder++
	}
	if a.sessions != nil {
		a.addSessions(di, ts, sis, metrics)
	}
	off := floorMod(p, a.ring)
	ep, at := uint32(p), int32(ts-start)
	col := off << chunkBits
	if a.sketches != nil {
		for k, si := range sis {
			pn := &a.chunks[si>>chunkBits][col|int64(si&chunkMask)]
			if pn.epoch != ep {
				pn.count, pn.epoch = 0, ep
				a.sketches[int64(si)*a.ring+off].Clear()
			}
			pn.add(at, metrics[k].Value)
			_ = a.sketches[int64(si)*a.ring+off].Add(metrics[k].Value)
		}
		return class
	}
	chunks := a.chunks
	for k, si := range sis {
		pn := &chunks[si>>chunkBits][col|int64(si&chunkMask)]
		if pn.epoch != ep {
			// a pane from an older, closed span: start afresh
			pn.count, pn.epoch = 0, ep
		}
		pn.add(at, metrics[k].Value)
	}
	return class
}

// lookup finds a device by id in the device table.
func (a *Aggregator) lookup(h uint64, id []byte) (uint32, bool) {
	t := &a.devs
	tag := uint32(h >> 32)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s.idx == 0 {
			return 0, false
		}
		if s.tag == tag && a.devices[s.idx-1].is(id) {
			return s.idx - 1, true
		}
	}
}

// seriesOf returns the series of metric name, the k-th metric of a record
// of device di, creating it if needed, and remembers where it found it for
// the next record. Add checks that hint inline first.
func (a *Aggregator) seriesOf(di uint32, k int, name []byte) uint32 {
	d := &a.devices[di]
	// The hint, compared in full: nameKey.quick cannot decide for names
	// longer than 16 bytes or at the very end of their buffer.
	if k < len(d.hint) {
		if h := d.hint[k]; h < 8 && uint16(h) < d.n && a.metricNames[d.inl[h].metric] == string(name) {
			return d.inl[h].series
		}
	}
	j, found := a.findSlot(d, name)
	if !found {
		a.newSeries(di, j, name)
		d = &a.devices[di]
	}
	if k < len(d.hint) && j < 255 {
		d.hint[k] = uint8(j)
	}
	return d.slot(j).series
}

// findSlot binary-searches d's slots for name: the index, or where it
// belongs.
func (a *Aggregator) findSlot(d *device, name []byte) (int, bool) {
	lo, hi := 0, int(d.n)
	for lo < hi {
		m := (lo + hi) / 2
		if a.metricNames[d.slot(m).metric] < string(name) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < int(d.n) && a.metricNames[d.slot(lo).metric] == string(name)
}

// missing counts the metrics d has no series for.
func (a *Aggregator) missing(d *device, metrics []schemas.Metric) int {
	n := 0
	for k := range metrics {
		if _, ok := a.findSlot(d, metrics[k].Name); !ok {
			n++
		}
	}
	return n
}

// limit classifies a record that would create n series for device d (nil:
// a new device): SeriesLimit or DeviceLimit if that exceeds a bound,
// counted, and InOrder if not.
func (a *Aggregator) limit(d *device, n int) Class {
	have := 0
	if d != nil {
		have = int(d.n)
	}
	switch {
	case have+n > a.opts.MaxSeriesPerDevice:
		a.stats.DeviceLimit++
		return DeviceLimit
	case a.liveSeries+n > a.maxSeries:
		a.stats.SeriesLimit++
		return SeriesLimit
	}
	return InOrder
}

// newDevice creates a device whose first record is at ts: its watermark
// starts there, and not before the shard's floor.
func (a *Aggregator) newDevice(h uint64, id []byte, ts int64) uint32 {
	di, ok := pop(&a.freeDevices)
	if !ok {
		di = uint32(len(a.devices))
		a.devices = append(a.devices, device{})
	}
	d := &a.devices[di]
	gen := d.gen + 1
	closed := max(floorDiv(ts-a.lateness, a.pane)*a.pane, a.floor)
	*d = device{closed: closed, last: noData, gen: gen, id: string(id), more: d.more[:0]}
	d.idLen = 0xff
	if len(id) <= len(d.short) {
		d.idLen = uint8(copy(d.short[:], id))
	}
	a.devs.insert(h, di)
	a.newDevices = append(a.newDevices, di)
	return di
}

// internMetric gives a metric name an index, the lowest released one if
// any.
func (a *Aggregator) internMetric(name string) uint32 {
	mi, ok := a.freeMetrics.pop()
	if ok {
		a.metricNames[mi], a.metricKeys[mi] = name, makeNameKey(name)
	} else {
		mi = uint32(len(a.metricNames))
		a.metricNames = append(a.metricNames, name)
		a.metricKeys = append(a.metricKeys, makeNameKey(name))
		a.metricRefs = append(a.metricRefs, 0)
	}
	a.metricIndex[name] = mi
	return mi
}

// releaseMetric drops a reference to metric mi, and the name with the
// last one.
func (a *Aggregator) releaseMetric(mi uint32) {
	if a.metricRefs[mi]--; a.metricRefs[mi] > 0 {
		return
	}
	delete(a.metricIndex, a.metricNames[mi])
	a.metricNames[mi], a.metricKeys[mi] = "", nameKey{}
	a.freeMetrics.push(mi)
}

// freeIndexes is a min-heap of released indexes.
type freeIndexes []uint32

func (h *freeIndexes) push(v uint32) {
	*h = append(*h, v)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *freeIndexes) pop() (uint32, bool) {
	s := *h
	if len(s) == 0 {
		return 0, false
	}
	v := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < n && s[l] < s[m] {
			m = l
		}
		if r := l + 1; r < n && s[r] < s[m] {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return v, true
}

func (a *Aggregator) newSeries(di uint32, at int, name []byte) {
	mi, ok := a.metricIndex[string(name)]
	if !ok {
		mi = a.internMetric(string(name))
	}
	a.metricRefs[mi]++
	si, ok := pop(&a.freeSeries)
	if !ok {
		si = uint32(len(a.series))
		a.series = append(a.series, seriesMeta{})
		if int(si>>chunkBits) == len(a.chunks) {
			a.chunks = append(a.chunks, make([]pane, a.ring<<chunkBits))
		}
		if a.opts.Quantiles {
			for range a.ring {
				sk, _ := newSketch() // only fails for a bad accuracy constant
				a.sketches = append(a.sketches, sk)
			}
		}
	}
	if a.sessions != nil && int(si+1)*len(a.sessions) > len(a.open) {
		a.open = append(a.open, make([]Agg, len(a.sessions))...)
	}
	s := &a.series[si]
	s.last = noData
	s.gen++
	a.liveSeries++
	a.devices[di].insertSlot(at, slot{metric: mi, series: si})
}

// pop takes the last index off a free list.
func pop(free *[]uint32) (uint32, bool) {
	n := len(*free)
	if n == 0 {
		return 0, false
	}
	i := (*free)[n-1]
	*free = (*free)[:n-1]
	return i, true
}

// paneOf returns series si's pane at ring offset off.
func (a *Aggregator) paneOf(si uint32, off int64) *pane {
	return &a.chunks[si>>chunkBits][off<<chunkBits|int64(si&chunkMask)]
}

// paneNum recovers the full pane number of a pane's 32-bit epoch: live
// panes are within the ring of the newest one.
func (a *Aggregator) paneNum(ep uint32) int64 {
	cur := floorDiv(a.maxTS, a.pane)
	return cur - int64(uint32(cur)-ep)
}

// seriesLast is the largest event time of series si of device d: its
// folded panes' (kept in meta) and its open panes'. Open panes lie from
// the device's closed point to its last event time, within the ring
// (a backtest crossing a gap of weeks checks a few panes, not every hour
// of the gap).
func (a *Aggregator) seriesLast(si uint32, d *device) int64 {
	last := a.series[si].last
	if d.last == noData {
		return last
	}
	maxQ := floorDiv(d.last, a.pane)
	for q := max(floorDiv(d.closed, a.pane), maxQ-a.ring+1); q <= maxQ; q++ {
		pn := a.paneOf(si, floorMod(q, a.ring))
		if pn.count > 0 && pn.epoch == uint32(q) {
			last = max(last, q*a.pane+int64(pn.lastAt))
		}
	}
	return last
}

// Tick tells the Aggregator the wall-clock time. The pipeline calls it
// after every batch of records and periodically while none arrive. After
// Options.IdleTimeout without records, the watermark advances as if event
// time kept pace with the wall clock.
func (a *Aggregator) Tick(now time.Time) {
	if wm, ok := a.IdleWatermark(now); ok {
		a.AdvanceIdle(wm)
	}
}

// IdleWatermark is Tick without its effect: it reports the watermark an
// idle advance would move to now, and true if that closes a pane. The
// wall clock is not part of the input, so a replay cannot repeat an idle
// advance by itself; the pipeline records the watermark before applying
// it with AdvanceIdle, and a replay applies the recorded one.
func (a *Aggregator) IdleWatermark(now time.Time) (int64, bool) {
	if a.active || a.lastTick.IsZero() {
		a.active = false
		a.lastTick = now
		return 0, false
	}
	if a.opts.IdleTimeout <= 0 || a.maxTS == noData {
		return 0, false
	}
	idle := now.Sub(a.lastTick)
	if idle < a.opts.IdleTimeout {
		return 0, false
	}
	wm := a.maxTS + idle.Milliseconds() - a.lateness
	return wm, floorDiv(wm, a.pane)*a.pane > a.closed
}

// AdvanceIdle moves the watermark to wm as an idle advance: see
// IdleWatermark. Nothing arrived for the idle timeout, so every device's
// lateness allowance has run out: the windows each device's own event
// time has passed are delivered. The window holding a device's last
// record stays open for its backlog (see the package doc).
func (a *Aggregator) AdvanceIdle(wm int64) {
	if a.pending != nil {
		a.emitPending()
	}
	before := a.wm
	a.advance(wm, true)
	if a.wm > before {
		a.stats.IdleAdvances++
	}
}

// Watermark returns the current watermark (Unix ms); math.MinInt64 before
// the first record.
func (a *Aggregator) Watermark() int64 { return a.wm }

// Stats returns the counters.
func (a *Aggregator) Stats() Stats { return a.stats }

// LateBound says, after Add classified a record Late, up to what event
// time (Unix ms) its device's windows were closed.
func (a *Aggregator) LateBound() int64 { return a.lateBound }

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
