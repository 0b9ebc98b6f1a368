package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
	"github.com/tapline/tapline/windows/wire"
)

// DeadLetters stores records that could not be used.
type DeadLetters interface {
	Write(*schemas.DeadLetter) error
}

// WindowFunc receives each closed window. The window is reused after the
// call returns.
type WindowFunc func(*windows.Window)

// Options configure a Processor. The yaml tags are the service's
// configuration keys (the outputs are wired by the program).
type Options struct {
	Shard       string          `yaml:"-"`
	Decode      schemas.Options `yaml:",inline"`
	Windows     windows.Options `yaml:",inline"`
	Rules       *rules.Config   `yaml:"-"` // nil: no rules
	DeadLetters DeadLetters     `yaml:"-"` // required
	OnWindow    WindowFunc      `yaml:"-"` // optional
	// OnAlert receives every alert, for the alerts dataset: suppressed
	// ones too (state SUPPRESSED). OnNotify receives the notifications:
	// the alerts not suppressed, alone or grouped by the rules' route
	// (rules.Router). Both optional.
	OnAlert  rules.AlertFunc `yaml:"-"`
	OnNotify rules.AlertFunc `yaml:"-"`
	// OnRecord receives each record that was aggregated, for the raw
	// dataset. The record is reused after the call. Optional.
	OnRecord func(rec *schemas.Record, seq string, arrival int64) `yaml:"-"`
	// MaxAhead bounds how far a record's event time may lie after its
	// arrival time for the windows: a later one is windowed at arrival +
	// MaxAhead (and counted in Stats.Clamped; the raw dataset keeps its
	// time). The watermark follows the largest event time, so without
	// the bound one device with a fast clock would make every other
	// device's records on the shard late. 0 disables it, as does a
	// record without an arrival time.
	MaxAhead time.Duration `yaml:"max_ahead"`
}

// EnsureDefaults sets the zero fields that have defaults.
func (o *Options) EnsureDefaults() {
	o.Decode.EnsureDefaults()
	o.Windows.EnsureDefaults()
}

// Validate reports every problem with the configuration, one per line,
// each naming its configuration key.
func (o *Options) Validate() error {
	var errs []error
	if o.MaxAhead < 0 {
		errs = append(errs, fmt.Errorf("max_ahead: %v is negative (0 turns it off)", o.MaxAhead))
	}
	return errors.Join(o.Decode.Validate(), o.Windows.Validate(), errors.Join(errs...))
}

// Stats count a Processor's records. Read them on the owning goroutine.
type Stats struct {
	Records  uint64                     // records given to Process
	Bytes    uint64                     // their payload bytes
	Batches  uint64                     // batched records (schemas: readings)
	Readings uint64                     // the readings in them
	Accepted uint64                     // decoded and aggregated (a record or a reading)
	Clamped  uint64                     // accepted, windowed at arrival + MaxAhead
	Rejected [schemas.NumReasons]uint64 // by reason, dead-lettered
	Windows  windows.Stats
	Fired    uint64
	Resolved uint64
}

// Processor runs decode → windows → rules for one shard. Create it with
// NewProcessor; it starts nothing.
type Processor struct {
	opts   Options
	dec    *schemas.Decoder
	agg    *windows.Aggregator
	eng    *rules.Engine
	stats  Stats
	letter schemas.DeadLetter
	// readingBuf holds the current reading of a batched record as a
	// record of its own, for dead letters.
	readingBuf []byte
	dlErr      error // first dead-letter failure, sticky
	onAlert    rules.AlertFunc
	router     *rules.Router
	rules      *rules.Config // the rules eng runs: Options.Rules or a reload's
	maxAhead   int64         // ms
}

// NewProcessor validates opts and builds the shard's state.
func NewProcessor(opts Options) (*Processor, error) {
	if opts.DeadLetters == nil {
		return nil, errors.New("pipeline: a dead-letter store is required")
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	p := &Processor{opts: opts, dec: schemas.NewDecoder(opts.Decode), onAlert: opts.OnAlert, maxAhead: opts.MaxAhead.Milliseconds()}
	if p.onAlert == nil {
		p.onAlert = func(*rules.Alert) {}
	}
	agg, err := windows.New(opts.Windows, (*output)(p))
	if err != nil {
		return nil, err
	}
	p.agg = agg
	cfg := opts.Rules
	if cfg == nil {
		cfg = &rules.Config{}
	}
	p.router = rules.NewRouter(cfg, p.onAlert, opts.OnNotify)
	if p.eng, err = p.newEngine(cfg); err != nil {
		return nil, err
	}
	p.rules = cfg
	return p, nil
}

func (p *Processor) newEngine(cfg *rules.Config) (*rules.Engine, error) {
	eng, err := rules.NewEngine(cfg, p.opts.Windows.Specs, p.opts.Windows.Quantiles, p.router.Alert)
	if err != nil {
		return nil, err
	}
	// Rule state lives as long as its series: a device silent for hours
	// (a traffic sensor at night, a machine between shifts) keeps its
	// baselines, as its series wait max_backlog for it. Forgetting at the
	// series TTL (1h) restarted every detector's warm-up after each such
	// gap, so sparse devices never scored (benchmarks/DETECTION.md).
	eng.ForgetAfter(p.opts.Windows.MaxBacklog)
	return eng, nil
}

// use makes the shard run eng, built for cfg; pending notification groups
// go out first, at watermark wm.
func (p *Processor) use(eng *rules.Engine, cfg *rules.Config, wm int64) {
	p.eng, p.rules = eng, cfg
	p.router.SetConfig(cfg, wm)
}

// Rules returns the rules the shard runs: Options.Rules, the ones its
// restored snapshot was taken under, or the last reload's.
func (p *Processor) Rules() *rules.Config { return p.rules }

// CheckRules reports whether cfg can run on these options' windows
// (every rule's window configured, quantiles enabled where read): what
// Processor.Reload would refuse, checked before a reload is offered to
// the shards.
func (o *Options) CheckRules(cfg *rules.Config) error {
	_, err := rules.NewEngine(cfg, o.Windows.Specs, o.Windows.Quantiles, nil)
	return err
}

// Reload makes the shard run cfg (its rules, route, inhibitions and
// silences) from here on. Rule states carry over by meaning, as in a
// restore: an unchanged rule keeps its state, a changed or removed one
// starts afresh or goes (RuleResets counts them) and its FIRING alerts
// resolve at the next watermark with the reason. Pending notification
// groups go out first. The journal calls it only at a recorded point of
// the stream, so a replay reloads at the same record.
func (p *Processor) Reload(cfg *rules.Config) error {
	eng, err := p.newEngine(cfg)
	if err != nil {
		return err
	}
	if _, err := eng.Restore(p.eng.AppendSnapshot(nil)); err != nil {
		return fmt.Errorf("pipeline: reload: %w", err)
	}
	for reason, n := range p.eng.Resets() {
		eng.Resets()[reason] += n
	}
	p.use(eng, cfg, p.agg.Watermark())
	return nil
}

// Process handles one record. seq is its sequence number and arrival its
// arrival time (Unix ms), both only recorded with dead letters and used for
// the future-skew check. A bad record is dead-lettered and counted; the
// error is non-nil only if the dead-letter store failed.
func (p *Processor) Process(data []byte, seq string, arrival int64) (err error) {
	p.stats.Records++
	p.stats.Bytes += uint64(len(data))
	defer func() {
		// A panic is a tapline bug, not the record's fault; the record is
		// dead-lettered with the stack so the shard keeps going.
		if r := recover(); r != nil {
			err = p.reject(data, seq, arrival, schemas.ReasonPanic, fmt.Sprintf("panic: %v; stack: %q", r, debug.Stack()))
		}
	}()
	rec, derr := p.dec.Decode(data, arrival)
	if derr != nil {
		return p.reject(data, seq, arrival, reasonOf(derr), derr.Error())
	}
	if !p.dec.Batched() {
		return p.add(rec, data, seq, arrival)
	}
	p.stats.Batches++
	// A batched message: each reading is a record of its own, a bad one
	// dead-lettered alone as the record it would have been.
	for {
		rec, ok, err := p.dec.NextReading()
		if !ok {
			return p.dlErr
		}
		p.stats.Readings++
		if err != nil {
			p.reject(p.readingRecord(), seq, arrival, reasonOf(err), err.Error())
			continue
		}
		p.add(rec, nil, seq, arrival)
	}
}

// reasonOf is the reason of a decoding error.
func reasonOf(err error) schemas.Reason {
	var se *schemas.Error
	if errors.As(err, &se) {
		return se.Reason
	}
	return schemas.ReasonMalformedJSON
}

// readingRecord renders the reading NextReading last returned as the
// record of one reading it stands for, {"device_id":...,<its fields>},
// for the dead-letter store: it can be fixed and sent again alone.
func (p *Processor) readingRecord() []byte {
	b := append(p.readingBuf[:0], `{"device_id":"`...)
	b = append(b, p.dec.BatchDeviceID()...)
	b = append(b, '"')
	if r := p.dec.Reading(); len(r) > 2 && r[0] == '{' {
		b = append(b, ',')
		b = append(b, r[1:]...)
	} else {
		b = append(b, `,"reading":`...)
		b = append(b, r...)
		b = append(b, '}')
	}
	p.readingBuf = b
	return b
}

// orReading is data, or for a reading (nil data) its record.
func (p *Processor) orReading(data []byte) []byte {
	if data == nil {
		return p.readingRecord()
	}
	return data
}

// add windows one decoded record (a message's, or a reading's: data nil)
// and passes it on for the raw dataset.
func (p *Processor) add(rec *schemas.Record, data []byte, seq string, arrival int64) error {
	ts := rec.Time
	if p.maxAhead > 0 && arrival > 0 && ts-arrival > p.maxAhead {
		ts = arrival + p.maxAhead
		p.stats.Clamped++
	}
	switch p.agg.AddSeq(rec.DeviceID, ts, rec.Seq, rec.Metrics) {
	case windows.Duplicate:
		return p.dlErr // counted in Stats.Windows.Duplicate; the raw dataset has the first
	case windows.Late:
		return p.reject(p.orReading(data), seq, arrival, schemas.ReasonLate,
			fmt.Sprintf("late: event time %s is before %s, up to which its device's windows are closed", fmtMs(ts), fmtMs(p.agg.LateBound())))
	case windows.SeriesLimit:
		return p.reject(p.orReading(data), seq, arrival, schemas.ReasonSeriesLimit, "series limit reached: record would create a new series")
	case windows.DeviceLimit:
		return p.reject(p.orReading(data), seq, arrival, schemas.ReasonSeriesLimit, "device series limit reached: record would give its device more series than max_series_per_device")
	}
	p.stats.Accepted++
	if p.opts.OnRecord != nil {
		p.opts.OnRecord(rec, seq, arrival)
	}
	return p.dlErr
}

// Input is one record of a batch.
type Input struct {
	Data    []byte
	Seq     string // sequence number
	Arrival int64  // arrival time, Unix ms
}

// ProcessBatch calls Process for each record in order (a GetRecords
// response), naming each record to Prefetch Lookahead records before it.
// Its error is Process's: the batch must not be acknowledged.
func (p *Processor) ProcessBatch(in []Input) error {
	for i := range in {
		if i+Lookahead < len(in) {
			p.Prefetch(in[i+Lookahead].Data)
		}
		p.Process(in[i].Data, in[i].Seq, in[i].Arrival)
	}
	return p.dlErr
}

func (p *Processor) reject(data []byte, seq string, arrival int64, reason schemas.Reason, msg string) error {
	p.stats.Rejected[reason]++
	p.letter = schemas.DeadLetter{Reason: reason, Error: msg, Shard: p.opts.Shard, Sequence: seq, Arrival: arrival, Data: data}
	if err := p.opts.DeadLetters.Write(&p.letter); err != nil && p.dlErr == nil {
		p.dlErr = fmt.Errorf("pipeline: shard %s: dead letter for %s: %w", p.opts.Shard, seq, err)
	}
	return p.dlErr
}

// AppendSnapshot appends the shard's state (windows and rule states) to
// b. Taken after a batch is durable, it lets a new Processor continue as
// if this one had never stopped: see Restore and the package doc.
func (p *Processor) AppendSnapshot(b []byte) []byte {
	return p.router.AppendSnapshot(p.eng.AppendSnapshot(p.agg.AppendSnapshot(p.appendRules(b, snapshotMagic))))
}

// appendRules starts a snapshot: its magic, then the rules as recorded.
func (p *Processor) appendRules(b []byte, magic string) []byte {
	b = append(b, magic...)
	rec := p.rules.Record()
	b = binary.AppendUvarint(b, uint64(len(rec)))
	return append(b, rec...)
}

// AppendSnapshotChanges is AppendSnapshot with, of the open panes and
// the rule states (most of a snapshot), only those that may have changed
// since the last AppendSnapshotChanges or AppendBase: a chain of them
// after a base stands for the shard's state at the last
// (RestoreParts). Each call starts the next changes: call it once for
// each snapshot stored. The journal stores a base when BaseDue says so.
func (p *Processor) AppendSnapshotChanges(b []byte) []byte {
	return p.router.AppendSnapshot(p.eng.AppendChanges(p.agg.AppendChanges(p.appendRules(b, snapshotMagicChanges))))
}

// AppendBase appends every open pane and rule state of the shard: the
// base the snapshots of changes after it build on.
func (p *Processor) AppendBase(b []byte) []byte {
	w := wire.Writer{B: append(b, baseMagic...)}
	mark := w.Open()
	w.B = p.agg.AppendBase(w.B)
	w.Close(mark)
	return p.eng.AppendBase(w.B)
}

// Limits on a chain of snapshots of changes after a base: how many a
// restore reads (MaxChain), and how far back, in watermark, the base may
// lie, so a store that expires state by age (the stack's lifecycle rule,
// 14 days) never expires a base that a recent snapshot still needs.
const (
	MaxChain   = 64
	MaxBaseAge = int64(24 * 3600_000) // ms
)

// BaseDue reports whether the shard's next snapshot should come with a
// new base (AppendBase), given how many snapshots of changes have been
// written since the last and the watermark it was written at: when
// either part has no base its changes build on (a new, restored-whole or
// reloaded Processor), when the changes written since add up to the
// base's size (a base then costs no more than going on: rules whose
// states all change every batch store about what whole snapshots
// stored; hourly rules, whose states change in the batches that close
// an hour, a base after those), or at the limits above.
func (p *Processor) BaseDue(states int, baseWM int64) bool {
	ab, aw, an := p.agg.BaseCost()
	eb, ew, en := p.eng.BaseCost()
	return !ab || !eb || aw+ew >= an+en || states >= MaxChain || p.Watermark()-baseWM >= MaxBaseAge
}

// Snapshot versions: /2 starts with the rules as recorded (rules.Config.
// Record; empty for rules not parsed from a document) and ends with the
// router's state; /1 had neither. /3 is /2 with the panes and rule
// states changed since the snapshot before (AppendSnapshotChanges); a
// base (AppendBase) has the rest.
const (
	snapshotMagic        = "tapline.pipeline/2\n"
	snapshotMagicV1      = "tapline.pipeline/1\n"
	snapshotMagicChanges = "tapline.pipeline/3\n"
	baseMagic            = "tapline.pipeline-base/1\n"
)

// snapshotRules reads the rules a /2 snapshot was taken under; nil when
// it names none (rules built in code).
func snapshotRules(b []byte) (cfg *rules.Config, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, errors.New("pipeline: snapshot: truncated rules")
	}
	rec, rest := b[k:k+int(n)], b[k+int(n):]
	if len(rec) == 0 {
		return nil, rest, nil
	}
	cfg, err = rules.ParseRecord(rec)
	return cfg, rest, err
}

// Restore loads a snapshot into a new Processor, before its first record.
// A snapshot taken under other window specs restores by spec (kept specs
// go on, removed ones' open windows are delivered with the next record,
// added ones start at the snapshot: see windows/respec.go); one taken
// under another pane, lateness or quantiles fails with an error wrapping
// windows.ErrIncompatible. One taken under other rules restores the
// states of the rules that did not change (RuleResets counts the
// others), except from a snapshot of tapline before that
// (rules.ErrIncompatible).
func (p *Processor) Restore(b []byte) error {
	var rest []byte
	v1 := bytes.HasPrefix(b, []byte(snapshotMagicV1))
	switch {
	case v1:
		rest = b[len(snapshotMagicV1):]
	case bytes.HasPrefix(b, []byte(snapshotMagic)):
		r, err := p.snapshotRules(b[len(snapshotMagic):])
		if r == nil {
			return err
		}
		rest = r
	default:
		return errors.New("pipeline: not a tapline shard snapshot")
	}
	rest, err := p.agg.Restore(rest)
	if err != nil {
		return err
	}
	if rest, err = p.eng.Restore(rest); err != nil {
		return err
	}
	if !v1 {
		if rest, err = p.router.Restore(rest); err != nil {
			return err
		}
	}
	if len(rest) != 0 {
		return fmt.Errorf("pipeline: %d bytes after the snapshot", len(rest))
	}
	return nil
}

// snapshotRules reads the rules a /2 or /3 snapshot was taken under
// and, when they are not the configured ones, continues under them: a
// change to the configured ones is a reload, made at a recorded point
// (journal). Rules that no longer parse or fit the windows (another
// tapline, other specs) leave the configured ones, restored by meaning.
// It returns the bytes after the rules (nil: an error).
func (p *Processor) snapshotRules(b []byte) ([]byte, error) {
	cfg, rest, err := snapshotRules(b)
	if cfg != nil && !cfg.Same(p.rules) {
		if eng, err := p.newEngine(cfg); err == nil {
			p.use(eng, cfg, 0)
		}
	}
	return rest, err
}

// RestoreParts is Restore from a base (AppendBase) and the snapshots of
// changes written after it (AppendSnapshotChanges), in order: the state
// the last of them was written at.
func (p *Processor) RestoreParts(base []byte, changes [][]byte) error {
	if !bytes.HasPrefix(base, []byte(baseMagic)) {
		return errors.New("pipeline: not a tapline shard base")
	}
	if len(changes) == 0 {
		return errors.New("pipeline: a base restores only with the changes after it")
	}
	r := wire.Reader{B: base[len(baseMagic):]}
	aggBase := r.Section()
	if r.Err() != nil {
		return errors.New("pipeline: base: truncated")
	}
	engBase := r.B
	parts := make([][]byte, len(changes))
	for i, c := range changes {
		if !bytes.HasPrefix(c, []byte(snapshotMagicChanges)) {
			return fmt.Errorf("pipeline: changes %d of %d: not a tapline shard snapshot of changes", i+1, len(changes))
		}
		var err error
		if i < len(changes)-1 {
			_, parts[i], err = snapshotRules(c[len(snapshotMagicChanges):])
		} else {
			parts[i], err = p.snapshotRules(c[len(snapshotMagicChanges):])
		}
		if parts[i] == nil {
			return fmt.Errorf("pipeline: changes %d of %d: %w", i+1, len(changes), err)
		}
	}
	ap, err := p.agg.Parts(aggBase.B)
	if err != nil {
		return err
	}
	ep, err := p.eng.Parts(engBase)
	if err != nil {
		return err
	}
	var rest []byte
	for i, c := range parts {
		if rest, err = ap.Apply(c); err == nil {
			rest, err = ep.Apply(rest)
		}
		if err != nil {
			return fmt.Errorf("pipeline: changes %d of %d: %w", i+1, len(parts), err)
		}
	}
	if err := ap.Restore(); err != nil {
		return err
	}
	if err := ep.Restore(); err != nil {
		return err
	}
	if rest, err = p.router.Restore(rest); err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("pipeline: %d bytes after the snapshot", len(rest))
	}
	return nil
}

// RuleResets returns how many rule states Restore dropped because their
// rule changed or was removed, by reason.
func (p *Processor) RuleResets() map[string]uint64 { return p.eng.Resets() }

// IdleWatermark reports whether an idle advance is due: see
// windows.Aggregator.IdleWatermark. The service records the watermark
// before it calls AdvanceIdle, so a replay repeats it.
func (p *Processor) IdleWatermark(now time.Time) (int64, bool) { return p.agg.IdleWatermark(now) }

// AdvanceIdle moves the watermark as an idle advance.
func (p *Processor) AdvanceIdle(wm int64) { p.agg.AdvanceIdle(wm) }

// Tick passes the wall clock to the windows, so an idle shard still closes
// windows. Call it after each batch and periodically when idle.
func (p *Processor) Tick(now time.Time) { p.agg.Tick(now) }

// CloseThrough delivers every window ending at or before t (Unix ms), of
// every device: see windows.Aggregator.CloseThrough.
func (p *Processor) CloseThrough(t int64) { p.agg.CloseThrough(t) }

// Flush closes every open window and sends every pending notification
// group, at the end of a shard.
func (p *Processor) Flush() {
	p.agg.Flush()
	p.router.Flush(p.agg.Watermark())
}

// Watermark returns the event-time watermark, Unix ms.
func (p *Processor) Watermark() int64 { return p.agg.Watermark() }

// LiveSeries returns the number of live (device, metric) series.
func (p *Processor) LiveSeries() int { return p.agg.LiveSeries() }

// Stats returns the counters.
func (p *Processor) Stats() Stats {
	s := p.stats
	s.Windows = p.agg.Stats()
	s.Fired, s.Resolved = p.eng.Counts()
	return s
}

// output adapts the Processor to windows.Output without exporting the
// methods on Processor itself.
type output Processor

func (o *output) Window(w *windows.Window) {
	if o.opts.OnWindow != nil {
		o.opts.OnWindow(w)
	}
	if w.SpecIndex >= 0 { // -1: a spec removed by a restore, which no rule reads
		o.eng.Window(w)
	}
}

func (o *output) Watermark(wm int64) {
	o.eng.Watermark(wm, o.agg)
	o.router.Advance(wm)
}

func (o *output) Retain(h windows.Handle) bool { return o.eng.Active(h) }

func fmtMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// deviceKey is the key Prefetch looks for, within the first
// deviceKeyWithin bytes of a record: the IoT rule in the stack (and
// devicesim) put it first.
const (
	deviceKey       = `"device_id"`
	deviceKeyWithin = 128
)

// Lookahead is how many records ahead of the one it processes a caller
// that holds a batch names the next one to Prefetch: enough for three
// cache misses in a row (device table slot, device, panes), two records
// apart, to arrive in time.
const Lookahead = 6

// Prefetch tells the shard that data comes Lookahead records after the
// one Process gets next, so the state of its device starts loading while
// the records before it are processed (windows.Aggregator.Prefetch):
// with a million devices in random order, a quarter to a third of the
// loop's time (benchmarks/RESULTS.md). Only a record whose device id is
// in its first 128 bytes gets the head start. A hint: the results are
// the same with or without it.
func (p *Processor) Prefetch(data []byte) {
	if !p.agg.Prefetching() {
		return
	}
	if id := leadingDevice(data); id != nil {
		p.agg.Prefetch(id)
	}
}

// leadingDevice is the device id of a record that names it near its
// start, nil for any other. It does not decode: a match inside a string
// value is a wrong hint, which costs a wasted load and nothing else.
func leadingDevice(data []byte) []byte {
	k := bytes.Index(data[:min(len(data), deviceKeyWithin)], []byte(deviceKey))
	if k < 0 {
		return nil
	}
	i := skipSpace(data, k+len(deviceKey))
	if i >= len(data) || data[i] != ':' {
		return nil
	}
	if i = skipSpace(data, i+1); i >= len(data) || data[i] != '"' {
		return nil
	}
	id := data[i+1:]
	n := bytes.IndexByte(id[:min(len(id), schemas.MaxIDLen+1)], '"')
	if n <= 0 {
		return nil
	}
	return id[:n]
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}
