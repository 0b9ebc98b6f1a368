package rules

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/detect"
)

// State of an alert as delivered (schemas.AlertState).
type State = schemas.AlertState

// Alert states. PENDING is internal and never delivered.
const (
	Firing   = schemas.AlertFiring
	Resolved = schemas.AlertResolved
)

// Alert is one state change of a (rule, series) pair.
type Alert struct {
	ID        string // unique per notification: hash of Incident and State
	Incident  string // shared by a FIRING alert and its RESOLVED
	Rule      string
	Kind      string
	Severity  string
	Device    string
	Metric    string // empty for a device-level missing rule
	Window    string // window spec name; empty for missing
	State     State
	Value     float64 // the aggregate, rate, z-score or silence in seconds
	Threshold float64 // the level crossed (for RESOLVED: the clear level)
	Start     int64   // event-time range the decision was made on, Unix ms
	End       int64
	At        int64 // event time of the transition (window end or watermark)
	Message   string
	// Attribution: for a forest over several metrics, each metric's share
	// of the score, largest first.
	Attribution []schemas.MetricShare
	// Reason: why a RESOLVED came without the condition clearing
	// (ReasonRuleRemoved, ReasonRuleChanged); empty otherwise.
	Reason string
	// Repeat counts the notifications of a firing alert after its first
	// (the rule's repeat_interval); 0 for the first and for RESOLVED.
	Repeat int
	// From the rule: its summary and runbook URL filled in, its labels.
	Summary, RunbookURL string
	Labels              map[string]string
	// Group: a notification of several alerts (Route.GroupBy) is its
	// first alert carrying the others here. Rows never have one.
	Group []Alert
	// Done, if set, is called by whoever delivers the notification once
	// it is out of the process (published, or dead-lettered to S3): the
	// journal then stops keeping it for a republish after a crash.
	Done func() `json:"-"`
	// routine: a FIRING that recurs with its rule's Routine period; the
	// Router suppresses it.
	routine bool
}

// AlertMessage is the alert as programs receive it (the SNS message, a
// dead letter, a backtest's JSON).
func (a *Alert) AlertMessage() schemas.AlertMessage {
	return schemas.AlertMessage{
		ID: a.ID, Incident: a.Incident, State: a.State, Rule: a.Rule, Kind: a.Kind, Severity: a.Severity,
		Device: a.Device, Metric: a.Metric, Window: a.Window, Value: a.Value, Threshold: a.Threshold,
		Start: schemas.AlertTime(a.Start), End: schemas.AlertTime(a.End), At: schemas.AlertTime(a.At), Message: a.Message,
		Attribution: a.Attribution, Reason: a.Reason, Repeat: a.Repeat,
		Summary: a.Summary, RunbookURL: a.RunbookURL, Labels: a.Labels,
		Group: groupMessages(a.Group),
	}
}

func groupMessages(g []Alert) []schemas.AlertMessage {
	if len(g) == 0 {
		return nil
	}
	out := make([]schemas.AlertMessage, len(g))
	for i := range g {
		out[i] = g[i].AlertMessage()
	}
	return out
}

// AlertFunc receives alerts on the engine's goroutine; it may keep them.
type AlertFunc func(*Alert)

// SeriesSource lists live series; *windows.Aggregator is one.
type SeriesSource interface {
	EachSeries(fn func(*windows.SeriesInfo))
}

type phase uint8

const (
	ok phase = iota
	pending
	firing
)

// ruleState is the state of one rule on one series (or device): every
// series holds one per rule, so its fields are ordered and sized to pack
// (104 bytes on 64-bit platforms; issue 15 bounds rule state per series).
type ruleState struct {
	rule      *Rule
	hist      uint64 // bit i: window i back was bad
	prevStart int64
	prevVal   float64
	base      *detect.Moments // zscore: EWMA baseline (see moments)
	det       detect.Detector // robust, seasonal, cusum, forest: made on the first window
	incident  string
	vec       *vector // forest over several metrics only
	notified  int64   // event time of the incident's last FIRING notification
	spec      int32   // index of the rule's window spec; -1 for missing
	clearRun  int32   // windows in a row below M bad while firing
	repeats   int32   // its FIRING notifications after the first
	phase     phase
	hasPrev   bool
}

// moments is a zscore rule's baseline, made at its first use: the other
// kinds, most rules, keep a nil pointer instead of 24 bytes.
func (st *ruleState) moments() *detect.Moments {
	if st.base == nil {
		st.base = new(detect.Moments)
	}
	return st.base
}

// vector is what a forest over several metrics (a device-level state)
// collects: one window of each metric, scored together. Held by pointer
// so the other rule states do not carry it.
type vector struct {
	vals  []float64 // by rule.Metrics; a metric not seen yet is NaN
	start int64     // the window the collected values belong to
	have  uint64    // bit i: Metrics[i] collected for start
}

type seriesRules struct {
	handle windows.Handle
	device windows.Handle
	states []ruleState
	stale  bool // restored under rules with additions: rebind at the next window
	// changed: a state written since the engine's last AppendChanges
	// or AppendBase (changes.go).
	changed bool
}

// Engine evaluates rules. Create it with NewEngine.
type Engine struct {
	rules    []*Rule
	specs    []windows.Spec
	missing  bool // any missing rule: Watermark has work
	vectors  bool // any forest over several metrics: windows feed device states
	emit     AlertFunc
	series   []seriesRules // by series handle index
	devices  []seriesRules // device-level missing rules, by device handle index
	fired    uint64
	resolved uint64
	// firing describes every FIRING incident (device, metric, window) so
	// a restore that drops its rule can still resolve it.
	firing map[string]firingInfo
	// orphans are FIRING alerts whose rule a restore dropped; the next
	// watermark resolves them.
	orphans []orphan
	resets  map[string]uint64 // rule states a restore dropped, by reason
	forget  int64             // ms; see ForgetAfter
	// changes.go: whether changes are relative to an AppendBase, its
	// size, and the bytes of rule states AppendChanges wrote since.
	based              bool
	baseBytes, written int
}

// ForgetAfter makes a series whose windows resume after a gap of more
// than d (between the end of one and the start of the next) start its
// rules afresh (warm-up included), unless one is
// firing: a baseline learnt before a long silence no longer describes
// the series. The pipeline sets it to the windows' max_backlog, how long
// a silent device's series are kept. 0, the default, never forgets.
func (e *Engine) ForgetAfter(d time.Duration) { e.forget = d.Milliseconds() }

// firingInfo is what a RESOLVED alert needs beyond the rule state.
type firingInfo struct {
	device, metric, window string
}

// orphan is a FIRING alert whose rule is gone.
type orphan struct {
	incident, reason     string
	rule, kind, severity string
	firingInfo
}

// Reasons a restore drops a rule's state (Alert.Reason of the RESOLVED
// it sends for a FIRING one).
const (
	ReasonRuleRemoved = "rule_removed"
	ReasonRuleChanged = "rule_changed"
)

// NewEngine checks that every rule's window and aggregate exist among
// specs (quantiles must be enabled for p50/p90/p99) and returns an engine
// delivering to emit.
func NewEngine(cfg *Config, specs []windows.Spec, quantiles bool, emit AlertFunc) (*Engine, error) {
	e := &Engine{specs: specs, emit: emit, firing: map[string]firingInfo{}, resets: map[string]uint64{}}
	for _, r := range cfg.Rules {
		if r.Kind == Missing {
			e.missing = true
		} else {
			e.vectors = e.vectors || r.deviceLevel()
			if specIndex(specs, r.Window) < 0 {
				return nil, &fieldError{r.File, r.Line, r.Name, "window", fmt.Sprintf("no window spec named %q is configured", r.Window)}
			}
			if r.Aggregate[0] == 'p' && specs[specIndex(specs, r.Window)].Session() {
				return nil, &fieldError{r.File, r.Line, r.Name, "aggregate", r.Aggregate + ": sessions keep no quantiles"}
			}
			if r.Aggregate[0] == 'p' && !quantiles {
				return nil, &fieldError{r.File, r.Line, r.Name, "aggregate", r.Aggregate + " needs quantiles enabled in the window options"}
			}
			if spec := specs[specIndex(specs, r.Window)]; r.Routine > 0 && (spec.Session() || r.Routine%spec.Slide != 0) {
				return nil, &fieldError{r.File, r.Line, r.Name, "routine", fmt.Sprintf("must be a whole number of slides (%v) of window %s, which must not be sessions", spec.Slide, r.Window)}
			}
			if r.Kind == Seasonal && specs[specIndex(specs, r.Window)].Session() {
				return nil, &fieldError{r.File, r.Line, r.Name, "window", "a seasonal rule needs windows at regular times, not sessions"}
			}
			if r.Kind == Seasonal {
				slide := specs[specIndex(specs, r.Window)].Slide
				if n := r.Season / slide; r.Season%slide != 0 || n < 2 || n > maxPositions {
					return nil, &fieldError{r.File, r.Line, r.Name, "season", fmt.Sprintf("must be 2..%d slides (%v) of window %s", maxPositions, slide, r.Window)}
				}
			}
		}
		e.rules = append(e.rules, r)
	}
	return e, nil
}

// maxPositions bounds a seasonal rule's state: 2016 positions is a week
// of 5-minute windows, 16 KiB.
const maxPositions = 2016

// robustFrom maps a robust rule's from to its detector's.
var robustFrom = map[string]detect.From{"median": detect.FromMedian, "range": detect.FromRange, "below": detect.FromBelow, "above": detect.FromAbove}

// newDetector makes the detector of a robust, seasonal or cusum rule for
// windows of spec.
func (r *Rule) newDetector(spec *windows.Spec, seed uint64) detect.Detector {
	switch r.Kind {
	case Robust:
		return r.novel(detect.NewRobust(r.History, r.Warmup, robustFrom[r.From]))
	case Seasonal:
		slide := spec.Slide.Milliseconds()
		warmup := r.Warmup
		if warmup == 0 {
			warmup = 2 * int(r.Season.Milliseconds()/slide)
		}
		return r.novel(detect.NewSeasonal(r.Season.Milliseconds(), slide, r.Alpha, r.Gamma, warmup))
	case CUSUM:
		return r.novel(detect.NewCUSUM(r.Drift, r.Z, r.Alpha, r.Warmup))
	case Forest:
		return r.novel(detect.NewForest(max(1, len(r.Metrics)), r.Shingle, r.Trees, r.Sample, r.Alpha, r.Warmup, seed))
	case Stuck:
		return detect.NewStuck(r.History)
	}
	return nil
}

// deviceLevel reports whether the rule keeps one state per device rather
// than per series: a missing rule without a metric, a forest over metrics.
func (r *Rule) deviceLevel() bool {
	return r.Kind == Missing && r.Metric == "" || r.Kind == Forest && len(r.Metrics) > 0
}

// forestOf returns the forest inside a detector (under novelty gating).
func forestOf(d detect.Detector) *detect.Forest {
	switch d := d.(type) {
	case *detect.Forest:
		return d
	case *detect.Novel:
		return forestOf(d.Detector)
	}
	return nil
}

func (r *Rule) novel(d detect.Detector) detect.Detector {
	if r.Novelty == 0 {
		return d
	}
	return detect.NewNovel(d, r.Novelty, r.NoveltyWarmup, r.NoveltyRise)
}

func specIndex(specs []windows.Spec, name string) int {
	for i, s := range specs {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// Counts returns how many alerts fired and resolved.
func (e *Engine) Counts() (fired, resolved uint64) { return e.fired, e.resolved }

// bind returns the rule states of a series, (re)creating them when the
// handle is new: a series evicted and reused starts from OK.
func (e *Engine) bind(list *[]seriesRules, h, dev windows.Handle, deviceID, metric string, deviceLevel bool) *seriesRules {
	i := int(h.Index())
	for len(*list) <= i {
		*list = append(*list, seriesRules{changed: true}) // not in the base
	}
	sr := &(*list)[i]
	if sr.handle == h && sr.states != nil && !sr.stale {
		return sr
	}
	var kept []ruleState
	if sr.handle == h && sr.stale {
		kept = sr.states // restored states, carried into the new list
		sr.states = nil
	}
	for i := range sr.states {
		// The slot's previous series is gone (evicted, its alerts with
		// it): forget its incidents, so they cannot pile up.
		delete(e.firing, sr.states[i].incident)
	}
	sr.handle, sr.device, sr.stale, sr.changed = h, dev, false, true
	sr.states = sr.states[:0]
	for _, r := range e.rules {
		if deviceLevel != r.deviceLevel() {
			continue
		}
		if m, _ := path.Match(r.Devices, deviceID); !m {
			continue
		}
		if !deviceLevel {
			if m, _ := path.Match(r.Metric, metric); !m {
				continue
			}
		}
		st := ruleState{rule: r, spec: int32(specIndex(e.specs, r.Window))}
		for k := range kept {
			if kept[k].rule == r {
				st = kept[k]
			}
		}
		sr.states = append(sr.states, st)
	}
	if sr.states == nil {
		sr.states = []ruleState{} // bound, with no rules
	}
	return sr
}

// Window evaluates the threshold, zscore and rate rules that read w's spec.
func (e *Engine) Window(w *windows.Window) {
	if len(e.rules) == 0 {
		return // no list of series to keep: there is nothing to bind
	}
	sr := e.bind(&e.series, w.Series, w.Device, w.DeviceID, w.Metric, false)
	for i := range sr.states {
		st := &sr.states[i]
		if int(st.spec) != w.SpecIndex {
			continue
		}
		sr.changed = true
		if e.forget > 0 && st.hasPrev && st.phase != firing && !w.Spec.Session() && w.Start-st.prevStart-w.Spec.Size.Milliseconds() > e.forget {
			*st = ruleState{rule: st.rule, spec: st.spec}
		}
		e.evalWindow(st, w)
	}
	if !e.vectors {
		return
	}
	dr := e.bind(&e.devices, w.Device, w.Device, w.DeviceID, "", true)
	for i := range dr.states {
		st := &dr.states[i]
		if int(st.spec) != w.SpecIndex || st.rule.Kind != Forest {
			continue
		}
		if k := slices.Index(st.rule.Metrics, w.Metric); k >= 0 {
			dr.changed = true
			e.collect(st, w, k)
		}
	}
}

// collect adds metric k's window to a multi-metric forest's vector and
// scores the vector once every metric of the window is in, or when a
// later window arrives first (a metric that missed a window keeps its
// last value; one never seen holds the vector back).
func (e *Engine) collect(st *ruleState, w *windows.Window, k int) {
	v := aggregate(w, st.rule.Aggregate)
	n := len(st.rule.Metrics)
	if st.vec == nil {
		st.vec = &vector{vals: make([]float64, n), start: w.Start}
		for i := range st.vec.vals {
			st.vec.vals[i] = math.NaN()
		}
	}
	c := st.vec
	if math.IsNaN(v) || w.Start < c.start {
		return
	}
	if c.have != 0 && w.Start > c.start {
		e.scoreVector(st, w)
	}
	c.start = w.Start
	c.vals[k] = v
	c.have |= 1 << k
	if c.have == 1<<n-1 {
		e.scoreVector(st, w)
	}
}

func (e *Engine) scoreVector(st *ruleState, w *windows.Window) {
	r, c := st.rule, st.vec
	c.have = 0
	for _, x := range c.vals {
		if math.IsNaN(x) {
			return
		}
	}
	if st.det == nil {
		st.det = r.newDetector(w.Spec, hash64(r.Name, w.DeviceID, ""))
	}
	score, ready := st.det.(interface {
		ObserveVector(int64, []float64) (float64, bool)
	}).ObserveVector(c.start, c.vals)
	if !ready {
		return
	}
	level := st.zLevel()
	start, end := c.start, c.start+w.Spec.Size.Milliseconds()
	shares := func() []schemas.MetricShare { return attribution(r.Metrics, forestOf(st.det)) }
	e.step(st, math.Abs(score) > level, score, level, start, end, w.DeviceID, "", w.Spec.Name, func(s State) string {
		return forestMessage(r, s, w.DeviceID, score, level, w.Spec.Name, shares())
	}, shares)
}

// attribution lists metrics by their share of the forest's last score.
func attribution(metrics []string, f *detect.Forest) []schemas.MetricShare {
	if f == nil {
		return nil
	}
	at := f.Attribution()
	out := make([]schemas.MetricShare, len(metrics))
	for i, m := range metrics {
		out[i] = schemas.MetricShare{Metric: m, Share: math.Round(at[i]*1000) / 1000}
	}
	slices.SortStableFunc(out, func(a, b schemas.MetricShare) int { return cmp.Compare(b.Share, a.Share) })
	return out
}

func forestMessage(r *Rule, s State, device string, score, level float64, window string, shares []schemas.MetricShare) string {
	var b strings.Builder
	for i, sh := range shares {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %.0f%%", sh.Metric, 100*sh.Share)
	}
	if s == Firing {
		return fmt.Sprintf("%s %s scores %.2f (forest, limit %.4g) in window %s; attribution: %s [%s]", device, strings.Join(r.Metrics, "+"), score, level, window, b.String(), r.Name)
	}
	return fmt.Sprintf("%s %s back within %.4g (forest) [%s]", device, strings.Join(r.Metrics, "+"), level, r.Name)
}

// hash64 is FNV-1a over the parts, each followed by a zero byte: alert
// ids (hashID) and forest seeds (the rule and what it watches, so every
// replay of a series cuts its trees the same way).
func hash64(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func (e *Engine) evalWindow(st *ruleState, w *windows.Window) {
	r := st.rule
	v := aggregate(w, r.Aggregate)
	if math.IsNaN(v) {
		return
	}
	slide := w.Spec.Slide.Milliseconds()
	// Consecutive windows are consecutive in time; sessions always are.
	gap := st.hasPrev && !w.Spec.Session() && w.Start != st.prevStart+slide
	prevStart, prevVal, hadPrev := st.prevStart, st.prevVal, st.hasPrev
	st.hasPrev, st.prevStart, st.prevVal = true, w.Start, v
	if gap {
		st.hist = 0 // consecutive means consecutive in time
	}

	var bad bool
	var level float64
	value := v
	switch r.Kind {
	case Threshold:
		bad, level = r.levelBad(v, st.phase == firing)
	case Rate:
		if !hadPrev {
			return
		}
		value = (v - prevVal) / float64(w.Start-prevStart) * float64(r.Per.Milliseconds())
		bad, level = r.levelBad(value, st.phase == firing)
	case ZScore:
		base := st.moments()
		if base.N < r.Warmup {
			base.Learn(v, r.Alpha)
			return
		}
		sd, mean := math.Sqrt(base.Var), base.Mean
		z := 0.0
		if d := v - mean; sd > 1e-9*math.Max(1, math.Abs(mean)) {
			z = d / sd
		} else if math.Abs(d) > 1e-9*math.Max(1, math.Abs(mean)) {
			z = math.Copysign(math.Inf(1), d)
		}
		level = st.zLevel()
		bad = math.Abs(z) > level
		if !bad {
			base.Learn(v, r.Alpha) // the baseline learns from normal windows only
		}
		// Off a flat baseline z is infinite; the alert carries the largest
		// finite value instead, which JSON (SNS, dead letters) can hold.
		value = max(-math.MaxFloat64, min(z, math.MaxFloat64))
	case Robust, Seasonal, CUSUM, Forest:
		if st.det == nil {
			st.det = r.newDetector(w.Spec, hash64(r.Name, w.DeviceID, w.Metric))
		}
		score, ready := st.det.Observe(w.Start, v)
		if !ready {
			return
		}
		level = st.zLevel()
		bad, value = math.Abs(score) > level, score
	case Stuck:
		if w.Count < minStuckReadings {
			return
		}
		if st.det == nil {
			st.det = r.newDetector(w.Spec, 0)
		}
		score, _ := st.det.Observe(w.Start, w.Max-w.Min)
		bad, level = score > 0, float64(r.History)
	}
	e.step(st, bad, value, level, w.Start, w.End, w.DeviceID, w.Metric, w.Spec.Name, func(s State) string {
		return windowMessage(r, s, w, v, value, level, st)
	}, nil)
}

// recurs reports whether a FIRING at end comes a whole number of the
// rule's Routine periods after its last notification on the series, at
// prev (0: none).
func (r *Rule) recurs(prev, end int64) bool {
	return r.Routine > 0 && prev > 0 && end > prev && (end-prev)%r.Routine.Milliseconds() == 0
}

// minStuckReadings is the fewest readings a window must hold for a stuck
// rule to read its range: one has none, and two equal readings happen by
// chance in an integer-valued series (travel times in whole seconds,
// speeds in whole km/h: 4 NAB false alarms at history 48).
const minStuckReadings = 3

// zLevel is the level a score must exceed: z, or clear_z while firing
// (hysteresis).
func (st *ruleState) zLevel() float64 {
	if st.phase == firing {
		return st.rule.ClearZ
	}
	return st.rule.Z
}

// levelBad tests a value against above/below, using the clear level while
// firing so the alert does not flap around a single threshold.
func (r *Rule) levelBad(v float64, isFiring bool) (bool, float64) {
	if r.Above != nil && r.Below != nil {
		return v > *r.Above || v < *r.Below, *r.Above
	}
	if r.Above != nil {
		level := *r.Above
		if isFiring && r.Clear != nil {
			level = *r.Clear
		}
		return v > level, level
	}
	level := *r.Below
	if isFiring && r.Clear != nil {
		level = *r.Clear
	}
	return v < level, level
}

// step advances the state machine by one evaluation and emits on FIRING
// and on resolution.
func (e *Engine) step(st *ruleState, bad bool, value, level float64, start, end int64, device, metric, window string, msg func(State) string, shares func() []schemas.MetricShare) {
	r := st.rule
	st.hist <<= 1
	if bad {
		st.hist |= 1
	}
	mask := uint64(1)<<r.N - 1
	if r.N == 64 {
		mask = math.MaxUint64
	}
	met := bits.OnesCount64(st.hist&mask) >= r.M
	switch st.phase {
	case ok, pending:
		switch {
		case met:
			routine := r.recurs(st.notified, end)
			st.phase, st.clearRun = firing, 0
			st.notified, st.repeats = end, 0
			st.incident = hashID(r.Name, device, metric, window, strconv.FormatInt(end, 10))
			e.fired++
			e.send(st, Firing, value, level, start, end, device, metric, window, msg(Firing), shares, routine)
		case bad:
			st.phase = pending
		default:
			st.phase = ok
		}
	case firing:
		if met {
			st.clearRun = 0
			if st.notified == 0 { // restored from a snapshot without it: count from here
				st.notified = end
			}
			if r.Repeat > 0 && end-st.notified >= r.Repeat.Milliseconds() {
				st.notified = end
				st.repeats++
				e.send(st, Firing, value, level, start, end, device, metric, window, msg(Firing), shares, false)
			}
			return
		}
		st.clearRun++
		if int(st.clearRun) > r.KeepFiringFor {
			st.phase, st.hist = ok, 0
			e.resolved++
			e.send(st, Resolved, value, level, start, end, device, metric, window, msg(Resolved), shares, false)
		}
	}
}

// send emits an alert of st's incident; routine marks a FIRING that
// recurs with its rule's Routine period (the Router suppresses it).
func (e *Engine) send(st *ruleState, s State, value, level float64, start, end int64, device, metric, window, msg string, shares func() []schemas.MetricShare, routine bool) {
	r := st.rule
	if s == Firing {
		e.firing[st.incident] = firingInfo{device, metric, window}
	} else {
		delete(e.firing, st.incident)
	}
	var at []schemas.MetricShare
	if shares != nil {
		at = shares()
	}
	id, repeat := hashID(st.incident, string(s)), 0
	if s == Firing && st.repeats > 0 {
		id, repeat = hashID(st.incident, string(s), strconv.Itoa(int(st.repeats))), int(st.repeats)
	}
	e.emit(&Alert{
		Repeat:      repeat,
		Summary:     r.Annotate(r.Summary, device, metric, value, level),
		RunbookURL:  r.Annotate(r.RunbookURL, device, metric, value, level),
		Labels:      r.Labels,
		Attribution: at,
		ID:          id,
		Incident:    st.incident,
		Rule:        r.Name,
		Kind:        r.Kind.String(),
		Severity:    r.Severity,
		Device:      device,
		Metric:      metric,
		Window:      window,
		State:       s,
		Value:       value,
		Threshold:   level,
		Start:       start,
		End:         end,
		At:          end,
		Message:     msg,
		routine:     routine,
	})
}

// Watermark evaluates missing-data rules at watermark wm.
func (e *Engine) Watermark(wm int64, src SeriesSource) {
	e.resolveOrphans(wm)
	if !e.missing {
		return
	}
	var lastDevice windows.Handle
	first := true
	src.EachSeries(func(info *windows.SeriesInfo) {
		if first || info.Device != lastDevice {
			first, lastDevice = false, info.Device
			dr := e.bind(&e.devices, info.Device, info.Device, info.DeviceID, "", true)
			for i := range dr.states {
				if dr.states[i].rule.Kind == Missing && e.evalMissing(&dr.states[i], wm, info.DeviceLast, info.DeviceID, "") {
					dr.changed = true
				}
			}
		}
		sr := e.bind(&e.series, info.Series, info.Device, info.DeviceID, info.Metric, false)
		for i := range sr.states {
			if sr.states[i].rule.Kind == Missing && e.evalMissing(&sr.states[i], wm, info.Last, info.DeviceID, info.Metric) {
				sr.changed = true
			}
		}
	})
}

// evalMissing reports whether it changed st.
func (e *Engine) evalMissing(st *ruleState, wm, last int64, device, metric string) bool {
	r := st.rule
	after := r.After.Milliseconds()
	silent := wm - last
	bad, was := silent >= after, st.phase == firing
	restored := bad && was && st.notified == 0
	if restored { // from a snapshot without it
		st.notified = wm
	}
	repeat := bad && was && r.Repeat > 0 && wm-st.notified >= r.Repeat.Milliseconds()
	if bad == was && !repeat {
		return restored
	}
	what := device
	if metric != "" {
		what += " " + metric
	}
	switch {
	case repeat:
		st.notified = wm
		st.repeats++
	case bad: // missing data fires at once: the duration is the debounce
		st.phase = firing
		st.notified, st.repeats = wm, 0
		st.incident = hashID(r.Name, device, metric, "", strconv.FormatInt(last, 10))
		e.fired++
	default:
		st.phase = ok
		e.resolved++
		msg := fmt.Sprintf("%s reporting again [%s]", what, r.Name)
		e.send(st, Resolved, float64(silent)/1000, float64(after)/1000, last, wm, device, metric, "", msg, nil, false)
		return true
	}
	msg := fmt.Sprintf("%s silent for %s (>= %s) [%s]", what, (time.Duration(silent) * time.Millisecond).Round(time.Second), r.After, r.Name)
	e.send(st, Firing, float64(silent)/1000, float64(after)/1000, last, wm, device, metric, "", msg, nil, false)
	return true
}

// resolveOrphans sends RESOLVED, with its reason, for every FIRING alert
// whose rule a restore dropped: at the first watermark after the
// restore, a point of the stream a replay reaches at the same record.
func (e *Engine) resolveOrphans(wm int64) {
	for _, o := range e.orphans {
		delete(e.firing, o.incident)
		e.resolved++
		what := o.device
		if o.metric != "" {
			what += " " + o.metric
		}
		why := "removed from"
		if o.reason == ReasonRuleChanged {
			why = "changed in"
		}
		e.emit(&Alert{
			ID: hashID(o.incident, string(Resolved)), Incident: o.incident, Rule: o.rule, Kind: o.kind, Severity: o.severity,
			Device: o.device, Metric: o.metric, Window: o.window, State: Resolved, Start: wm, End: wm, At: wm, Reason: o.reason,
			Message: fmt.Sprintf("%s: resolved because rule %s was %s the rules [%s]", what, o.rule, why, o.rule),
		})
	}
	e.orphans = nil
}

// Resets returns how many rule states restores dropped, by reason.
func (e *Engine) Resets() map[string]uint64 { return e.resets }

// Active reports whether any rule on the series, or a device-level rule on
// its device, is pending or firing. The Aggregator keeps such series past
// their TTL so the alert can resolve.
func (e *Engine) Active(series windows.Handle) bool {
	i := int(series.Index())
	if i >= len(e.series) || e.series[i].handle != series {
		return false
	}
	sr := &e.series[i]
	for k := range sr.states {
		if sr.states[k].phase != ok {
			return true
		}
	}
	if d := int(sr.device.Index()); d < len(e.devices) && e.devices[d].handle == sr.device {
		for k := range e.devices[d].states {
			if e.devices[d].states[k].phase != ok {
				return true
			}
		}
	}
	return false
}

func aggregate(w *windows.Window, name string) float64 {
	switch name {
	case "count":
		return float64(w.Count)
	case "sum":
		return w.Sum
	case "min":
		return w.Min
	case "max":
		return w.Max
	case "mean":
		return w.Mean
	case "stddev":
		return w.Stddev()
	case "first":
		return w.First
	case "last":
		return w.Last
	case "p50":
		return w.Quantile(0.5)
	case "p90":
		return w.Quantile(0.9)
	case "p99":
		return w.Quantile(0.99)
	case "duration": // seconds from the first record to the last: a session's length
		return float64(w.LastTS-w.FirstTS) / 1000
	}
	return math.NaN()
}

func windowMessage(r *Rule, s State, w *windows.Window, v, value, level float64, st *ruleState) string {
	what := w.DeviceID + " " + w.Metric + " " + r.Aggregate
	switch r.Kind {
	case Robust, Seasonal, CUSUM, Forest:
		if s == Firing {
			return fmt.Sprintf("%s %.4g scores %.2f (%s, limit %.4g) in window %s [%s]", what, v, value, r.Kind, level, w.Spec.Name, r.Name)
		}
		return fmt.Sprintf("%s %.4g back within %.4g (%s) [%s]", what, v, level, r.Kind, r.Name)
	case Stuck:
		if s == Firing {
			return fmt.Sprintf("%s %s stuck at %.4g in window %s: %d readings all equal, after at least %d windows that varied [%s]", w.DeviceID, w.Metric, v, w.Spec.Name, w.Count, r.History, r.Name)
		}
		return fmt.Sprintf("%s %s varies again [%s]", w.DeviceID, w.Metric, r.Name)
	case ZScore:
		if s == Firing {
			return fmt.Sprintf("%s %.4g is %.2f sd from baseline %.4g in window %s [%s]", what, v, value, st.moments().Mean, w.Spec.Name, r.Name)
		}
		return fmt.Sprintf("%s %.4g back within %.2f sd of baseline %.4g [%s]", what, v, level, st.moments().Mean, r.Name)
	case Rate:
		if s == Firing {
			return fmt.Sprintf("%s changed %+.4g per %s (limit %.4g) in window %s [%s]", what, value, r.Per, level, w.Spec.Name, r.Name)
		}
		return fmt.Sprintf("%s change %+.4g per %s back within limit [%s]", what, value, r.Per, r.Name)
	}
	if s == Firing {
		op := ">"
		if r.Above == nil || (r.Below != nil && v < *r.Below) {
			op, level = "<", *r.Below
		}
		return fmt.Sprintf("%s %.4g %s %.4g in %d of the last %d %s windows [%s]", what, v, op, level, r.M, r.N, w.Spec.Name, r.Name)
	}
	dir := "at or below"
	if r.Above == nil {
		dir = "at or above"
	}
	return fmt.Sprintf("%s %.4g back %s %.4g [%s]", what, v, dir, level, r.Name)
}

// hashID is a short deterministic id: 16 hex digits of FNV-1a over the
// parts, each followed by a zero byte so ("ab","c") != ("a","bc").
func hashID(parts ...string) string { return fmt.Sprintf("%016x", hash64(parts...)) }
