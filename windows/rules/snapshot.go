package rules

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"

	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/detect"
	"github.com/tapline/tapline/windows/wire"
)

// Snapshot versions. /2 keys each rule state by its rule's name and a
// hash of the rule's definition, so a restore under changed rules keeps
// the state of every rule that did not change (see Restore). /1 was
// keyed by position and restores only under the same rules.
const (
	snapshotMagic   = "tapline.rules/4" // /3 plus which series still rebind to rules added by a restore or reload
	snapshotMagicV3 = "tapline.rules/3" // /2 plus each state's notifications (repeat_interval)
	snapshotMagicV2 = "tapline.rules/2"
	snapshotMagicV1 = "tapline.rules/1"
)

// ErrIncompatible is returned by Restore for a /1 snapshot taken with
// other rules: its states belong to rules that are no longer the same.
var ErrIncompatible = errors.New("rules: snapshot was taken with different rules")

// definition is a hash of everything a rule's state depends on: all its
// fields but its name (the other half of the key), its severity (how
// alerts are labelled, not what they decide) and where it was defined.
func (r *Rule) definition() uint64 {
	var w wire.Writer
	w.Uint(uint64(r.Kind))
	for _, s := range append([]string{r.Devices, r.Metric, r.Window, r.Aggregate, r.From}, r.Metrics...) {
		w.String(s)
	}
	for _, f := range []*float64{r.Above, r.Below, r.Clear} {
		w.Bool(f != nil)
		if f != nil {
			w.Float(*f)
		}
	}
	for _, v := range []int{r.M, r.N, r.KeepFiringFor, r.Warmup, r.History, r.Novelty, r.Shingle, r.Trees, r.Sample, len(r.Metrics)} {
		w.Int(int64(v))
	}
	for _, v := range []float64{r.Z, r.ClearZ, r.Alpha, r.Gamma, r.Drift} {
		w.Float(v)
	}
	for _, d := range []int64{int64(r.Per), int64(r.After), int64(r.Season)} {
		w.Int(d)
	}
	// Fields added later are hashed only when set, so the rules that do
	// not use them keep their definition, and their state, across the
	// upgrade.
	if r.NoveltyWarmup != 0 {
		w.String("novelty_warmup")
		w.Int(int64(r.NoveltyWarmup))
	}
	if r.NoveltyRise != 0 {
		w.String("novelty_rise")
		w.Float(r.NoveltyRise)
	}
	h := fnv.New64a()
	h.Write(w.B)
	return h.Sum64()
}

// AppendSnapshot appends the engine's state to b: its rules (name,
// definition, and what a RESOLVED needs) and window specs by name, the
// FIRING incidents, and every rule state of every bound series and
// device (phase, history, previous value, baselines and detectors,
// incident), each naming its rule and spec by index into those tables.
// It pairs with the Aggregator's snapshot, whose handles it refers to.
func (e *Engine) AppendSnapshot(b []byte) []byte {
	w := wire.Writer{B: b}
	e.appendHeader(&w)
	for _, list := range [][]seriesRules{e.series, e.devices} {
		w.Uint(uint64(len(list)))
		for i := range list {
			e.appendEntry(&w, &list[i])
		}
	}
	return w.B
}

// appendHeader writes what a snapshot holds before the rule states: the
// counters, rules, specs and incidents.
func (e *Engine) appendHeader(w *wire.Writer) {
	w.String(snapshotMagic)
	w.Uint(e.fired)
	w.Uint(e.resolved)
	w.Uint(uint64(len(e.rules)))
	for _, r := range e.rules {
		w.String(r.Name)
		w.Uint(r.definition())
		w.String(r.Kind.String())
		w.String(r.Severity)
	}
	w.Uint(uint64(len(e.specs)))
	for _, s := range e.specs {
		w.String(s.Name)
	}
	incidents := make([]string, 0, len(e.firing))
	for id := range e.firing {
		incidents = append(incidents, id)
	}
	slices.Sort(incidents)
	w.Uint(uint64(len(incidents)))
	for _, id := range incidents {
		f := e.firing[id]
		w.String(id)
		w.String(f.device)
		w.String(f.metric)
		w.String(f.window)
	}
	w.Uint(uint64(len(e.orphans)))
	for _, o := range e.orphans {
		for _, s := range []string{o.incident, o.reason, o.rule, o.kind, o.severity, o.device, o.metric, o.window} {
			w.String(s)
		}
	}
}

// appendEntry writes one series' or device's rule states.
func (e *Engine) appendEntry(w *wire.Writer, sr *seriesRules) {
	switch {
	case sr.states == nil:
		w.Uint(0)
		return
	case sr.stale: // restored states that have not met the added rules yet
		w.Uint(2)
	default:
		w.Uint(1)
	}
	w.Uint(uint64(sr.handle))
	w.Uint(uint64(sr.device))
	w.Uint(uint64(len(sr.states)))
	for j := range sr.states {
		st := &sr.states[j]
		w.Uint(uint64(e.ruleIndex(st.rule)))
		w.Int(int64(st.spec))
		e.appendState(w, st)
	}
}

func (e *Engine) appendState(w *wire.Writer, st *ruleState) {
	w.Uint(uint64(st.phase))
	w.Uint(st.hist)
	w.Int(int64(st.clearRun))
	w.Bool(st.hasPrev)
	w.Int(st.prevStart)
	w.Float(st.prevVal)
	var base detect.Moments // zero for the kinds without one
	if st.base != nil {
		base = *st.base
	}
	w.Int(int64(base.N))
	w.Float(base.Mean)
	w.Float(base.Var)
	w.String(st.incident)
	w.Bool(st.det != nil)
	if st.det != nil {
		mark := w.Open() // sized, so a restore that drops the rule can skip it
		st.det.Append(w)
		w.Close(mark)
	}
	var c vector
	if st.vec != nil {
		c = *st.vec
	}
	w.Uint(uint64(len(c.vals)))
	for _, x := range c.vals {
		w.Float(x)
	}
	w.Int(c.start)
	w.Uint(c.have)
	w.Int(st.notified)
	w.Uint(uint64(st.repeats))
}

func (e *Engine) ruleIndex(r *Rule) int {
	for i, x := range e.rules {
		if x == r {
			return i
		}
	}
	panic("rules: state of an unknown rule")
}

// snapRule is a rule as a /2 snapshot recorded it, and the current rule
// its states go to (nil: dropped, for reason).
type snapRule struct {
	name, kind, severity string
	now                  *Rule
	reason               string
}

// Restore loads a snapshot from AppendSnapshot into a new Engine and
// returns the bytes after it.
//
// States follow their rule by name and definition: the state of a rule
// that is still configured unchanged is restored whatever else changed
// (rules added, removed, reordered, other rules edited, window specs
// added); the state of a rule removed or changed is dropped (counted in
// Resets), and if it was FIRING the first watermark after the restore
// sends its RESOLVED with the reason. A series picks up the states of
// new and changed rules, fresh, at its next window. A /1 snapshot
// restores only under the rules it was taken with (ErrIncompatible).
func (e *Engine) Restore(b []byte) ([]byte, error) {
	if len(e.series) > 0 || len(e.devices) > 0 {
		return nil, errors.New("rules: Restore needs a new Engine")
	}
	r := wire.Reader{B: b}
	m := r.String()
	v2 := m == snapshotMagicV2
	switch m {
	case snapshotMagicV1:
		return e.restoreV1(r)
	case snapshotMagic, snapshotMagicV3, snapshotMagicV2:
	default:
		return nil, fmt.Errorf("rules: not a rules snapshot (%q)", m)
	}
	e.fired, e.resolved = r.Uint(), r.Uint()
	current := Config{Rules: e.rules}
	rules := make([]snapRule, r.Len(4))
	for i := range rules {
		sr := &rules[i]
		sr.name = r.String()
		def := r.Uint()
		sr.kind, sr.severity = r.String(), r.String()
		sr.reason = ReasonRuleRemoved
		if cur := current.Rule(sr.name); cur != nil {
			sr.reason = ReasonRuleChanged
			if cur.definition() == def {
				sr.now, sr.reason = cur, ""
			}
		}
	}
	specs := make([]int, r.Len(1)) // snapshot spec index → current, -1 gone
	for i := range specs {
		specs[i] = specIndex(e.specs, r.String())
	}
	incidents := map[string]firingInfo{}
	for range r.Len(4) {
		id := r.String()
		incidents[id] = firingInfo{r.String(), r.String(), r.String()}
	}
	for range r.Len(8) {
		var o orphan
		for _, s := range []*string{&o.incident, &o.reason, &o.rule, &o.kind, &o.severity, &o.device, &o.metric, &o.window} {
			*s = r.String()
		}
		e.orphans = append(e.orphans, o)
		incidents[o.incident] = o.firingInfo
	}
	// Rules added or changed since the snapshot have no states yet: every
	// restored series rebinds at its next window to pick them up.
	kept := map[*Rule]bool{}
	for _, sr := range rules {
		if sr.now != nil {
			kept[sr.now] = true
		}
	}
	stale := len(kept) != len(e.rules)
	e.readLists(&r, m == snapshotMagic, func(sr *seriesRules, n int) {
		sr.states = make([]ruleState, 0, n)
		sr.stale = sr.stale || stale
		for range n {
			ri, si := r.Uint(), r.Int()
			if ri >= uint64(len(rules)) || si < -1 || si >= int64(len(specs)) {
				r.Fail("rule %d or spec %d out of range", ri, si)
				break
			}
			old := &rules[ri]
			var st ruleState
			st.spec = -1
			if si >= 0 {
				st.spec = int32(specs[si])
			}
			st.rule = old.now
			if old.now != nil && old.now.Window != "" && st.spec < 0 {
				r.Fail("rule %q: window %q not configured", old.name, old.now.Window)
				break
			}
			var spec *windows.Spec
			if st.spec >= 0 {
				spec = &e.specs[st.spec]
			}
			if !restoreState(&r, &st, spec, v2) {
				break
			}
			if old.now == nil {
				e.drop(old, &st, incidents)
				continue
			}
			sr.states = append(sr.states, st)
		}
	})
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("rules: restore: %w", err)
	}
	e.firing = incidents
	return r.B, nil
}

// readLists reads the series and device lists of a snapshot of any
// version: for each bound entry its handles, then states reads its n
// rule states.
func (e *Engine) readLists(r *wire.Reader, v4 bool, states func(sr *seriesRules, n int)) {
	for _, list := range []*[]seriesRules{&e.series, &e.devices} {
		*list = make([]seriesRules, r.Len(1))
		for i := range *list {
			sr := &(*list)[i]
			if v4 {
				switch r.Uint() {
				case 0:
					continue
				case 2:
					sr.stale = true
				}
			} else if !r.Bool() {
				continue
			}
			sr.handle, sr.device = windows.Handle(r.Uint()), windows.Handle(r.Uint())
			states(sr, r.Len(8))
		}
	}
}

// drop counts a dropped state and, if it was FIRING, queues its RESOLVED.
func (e *Engine) drop(old *snapRule, st *ruleState, incidents map[string]firingInfo) {
	e.resets[old.reason]++
	if st.phase != firing || st.incident == "" {
		return
	}
	f, ok := incidents[st.incident]
	if !ok {
		return
	}
	e.orphans = append(e.orphans, orphan{incident: st.incident, reason: old.reason, rule: old.name, kind: old.kind, severity: old.severity, firingInfo: f})
}

// restoreState reads one state's fields into st. Its detector is rebuilt
// for st.rule and spec; for a dropped state (st.rule nil) its bytes are
// skipped.
func restoreState(r *wire.Reader, st *ruleState, spec *windows.Spec, v2 bool) bool {
	readCore(r, st)
	if st.phase > firing {
		r.Fail("phase %d", st.phase)
		return false
	}
	if r.Bool() {
		sec := r.Section()
		if st.rule != nil {
			if !st.rule.Kind.detected() || spec == nil {
				r.Fail("a detector for rule %q of kind %s", st.rule.Name, st.rule.Kind)
				return false
			}
			st.det = st.rule.newDetector(spec, 0) // the seed is in the state
			st.det.Restore(&sec)
			if err := sec.Err(); err != nil || len(sec.B) != 0 {
				r.Fail("rule %q: detector: %v (%d bytes left)", st.rule.Name, err, len(sec.B))
				return false
			}
		}
	}
	var c vector
	if n := r.Len(8); n > 0 {
		if st.rule != nil && n != len(st.rule.Metrics) {
			r.Fail("rule %q: %d collected metrics, want %d", st.rule.Name, n, len(st.rule.Metrics))
			return false
		}
		c.vals = make([]float64, n)
		for k := range c.vals {
			c.vals[k] = r.Float()
		}
	}
	c.start, c.have = r.Int(), r.Uint()
	if c.vals != nil {
		st.vec = &c
	}
	if !v2 {
		st.notified, st.repeats = r.Int(), int32(min(r.Uint(), math.MaxInt32))
	}
	return r.Err() == nil
}

// readCore reads the fields every snapshot version has, in appendState's
// order.
func readCore(r *wire.Reader, st *ruleState) {
	st.phase = phase(r.Uint())
	st.hist = r.Uint()
	st.clearRun = int32(min(max(r.Int(), math.MinInt32), math.MaxInt32))
	st.hasPrev = r.Bool()
	st.prevStart = r.Int()
	st.prevVal = r.Float()
	base := detect.Moments{N: int(r.Int())}
	base.Mean, base.Var = r.Float(), r.Float()
	if base != (detect.Moments{}) {
		st.base = &base
	}
	st.incident = r.String()
}

// restoreV1 reads a /1 snapshot: positional, without detectors, valid
// only under the same rules.
func (e *Engine) restoreV1(r wire.Reader) ([]byte, error) {
	var want wire.Writer
	e.fingerprintV1(&want)
	if len(r.B) < len(want.B) || string(r.B[:len(want.B)]) != string(want.B) {
		return nil, ErrIncompatible
	}
	r.B = r.B[len(want.B):]
	e.fired, e.resolved = r.Uint(), r.Uint()
	e.readLists(&r, false, func(sr *seriesRules, n int) {
		sr.states = make([]ruleState, n)
		for j := range sr.states {
			st := &sr.states[j]
			ri := r.Uint()
			if ri >= uint64(len(e.rules)) {
				r.Fail("rule index %d out of range", ri)
				return
			}
			st.rule = e.rules[ri]
			si := r.Int()
			if si < -1 || si >= int64(len(e.specs)) {
				r.Fail("spec index %d out of range", si)
				si = -1
			}
			st.spec = int32(si)
			readCore(&r, st)
		}
	})
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("rules: restore: %w", err)
	}
	return r.B, nil
}

// fingerprintV1 is what a /1 snapshot's meaning depended on.
func (e *Engine) fingerprintV1(w *wire.Writer) {
	w.Uint(uint64(len(e.rules)))
	for _, r := range e.rules {
		w.String(r.Name)
		w.String(string(r.Kind))
		w.String(r.Devices)
		w.String(r.Metric)
		w.String(r.Window)
	}
	w.Uint(uint64(len(e.specs)))
	for _, s := range e.specs {
		w.String(s.Name)
	}
}
