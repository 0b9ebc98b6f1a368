package rules

import (
	"errors"
	"fmt"

	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/wire"
)

// Snapshot versions: /2 adds each rule state's detector; /1 (no
// detectors) still restores.
const (
	snapshotMagic   = "tapline.rules/2"
	snapshotMagicV1 = "tapline.rules/1"
)

// ErrIncompatible is returned by Restore for a snapshot taken with other
// rules: its states belong to rules that are no longer the same.
var ErrIncompatible = errors.New("rules: snapshot was taken with different rules")

// AppendSnapshot appends the engine's state (every rule state of every
// bound series and device: phase, history, previous value, z-score
// baseline, incident) to b. It pairs with the Aggregator's snapshot,
// whose handles it refers to.
func (e *Engine) AppendSnapshot(b []byte) []byte {
	w := wire.Writer{B: b}
	w.String(snapshotMagic)
	e.fingerprint(&w)
	w.Uint(e.fired)
	w.Uint(e.resolved)
	for _, list := range [][]seriesRules{e.series, e.devices} {
		w.Uint(uint64(len(list)))
		for i := range list {
			sr := &list[i]
			w.Bool(sr.states != nil)
			if sr.states == nil {
				continue
			}
			w.Uint(uint64(sr.handle))
			w.Uint(uint64(sr.device))
			w.Uint(uint64(len(sr.states)))
			for j := range sr.states {
				st := &sr.states[j]
				w.Uint(uint64(e.ruleIndex(st.rule)))
				w.Int(int64(st.spec))
				w.Uint(uint64(st.phase))
				w.Uint(st.hist)
				w.Int(int64(st.clearRun))
				w.Bool(st.hasPrev)
				w.Int(st.prevStart)
				w.Float(st.prevVal)
				w.Int(int64(st.seen))
				w.Float(st.mean)
				w.Float(st.vr)
				w.String(st.incident)
				w.Bool(st.det != nil)
				if st.det != nil {
					st.det.Append(&w)
				}
				w.Uint(uint64(len(st.vec)))
				for _, x := range st.vec {
					w.Float(x)
				}
				w.Int(st.vecStart)
				w.Uint(st.vecHave)
			}
		}
	}
	return w.B
}

func (e *Engine) fingerprint(w *wire.Writer) {
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

func (e *Engine) ruleIndex(r *Rule) int {
	for i, x := range e.rules {
		if x == r {
			return i
		}
	}
	panic("rules: state of an unknown rule")
}

// Restore loads a snapshot from AppendSnapshot into a new Engine and
// returns the bytes after it.
func (e *Engine) Restore(b []byte) ([]byte, error) {
	if len(e.series) > 0 || len(e.devices) > 0 {
		return nil, errors.New("rules: Restore needs a new Engine")
	}
	r := wire.Reader{B: b}
	m := r.String()
	if m != snapshotMagic && m != snapshotMagicV1 {
		return nil, fmt.Errorf("rules: not a rules snapshot (%q)", m)
	}
	var want wire.Writer
	e.fingerprint(&want)
	if len(r.B) < len(want.B) || string(r.B[:len(want.B)]) != string(want.B) {
		return nil, ErrIncompatible
	}
	r.B = r.B[len(want.B):]
	e.fired, e.resolved = r.Uint(), r.Uint()
	for _, list := range []*[]seriesRules{&e.series, &e.devices} {
		*list = make([]seriesRules, r.Len(1))
		for i := range *list {
			sr := &(*list)[i]
			if !r.Bool() {
				continue
			}
			sr.handle, sr.device = windows.Handle(r.Uint()), windows.Handle(r.Uint())
			sr.states = make([]ruleState, r.Len(8))
			for j := range sr.states {
				st := &sr.states[j]
				ri := r.Uint()
				if ri >= uint64(len(e.rules)) {
					r.Fail("rule index %d out of range", ri)
					break
				}
				st.rule = e.rules[ri]
				st.spec = int(r.Int())
				if st.spec < -1 || st.spec >= len(e.specs) {
					r.Fail("spec index %d out of range", st.spec)
				}
				st.phase = phase(r.Uint())
				st.hist = r.Uint()
				st.clearRun = int(r.Int())
				st.hasPrev = r.Bool()
				st.prevStart = r.Int()
				st.prevVal = r.Float()
				st.seen = int(r.Int())
				st.mean, st.vr = r.Float(), r.Float()
				st.incident = r.String()
				if m == snapshotMagicV1 {
					continue
				}
				if r.Bool() {
					if st.rule.Kind == ZScore || !st.rule.Kind.scored() || st.spec < 0 || st.spec >= len(e.specs) {
						r.Fail("a detector for rule %q of kind %s", st.rule.Name, st.rule.Kind)
						break
					}
					st.det = st.rule.newDetector(&e.specs[st.spec], 0) // the seed is in the state
					st.det.Restore(&r)
				}
				if n := r.Len(8); n > 0 {
					if n != len(st.rule.Metrics) {
						r.Fail("rule %q: %d collected metrics, want %d", st.rule.Name, n, len(st.rule.Metrics))
						break
					}
					st.vec = make([]float64, n)
					for k := range st.vec {
						st.vec[k] = r.Float()
					}
				}
				st.vecStart, st.vecHave = r.Int(), r.Uint()
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("rules: restore: %w", err)
	}
	return r.B, nil
}
