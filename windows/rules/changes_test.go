package rules

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tapline/tapline/windows"
)

// series is a fake live series for the missing-data rules.
type series []windows.SeriesInfo

func (s series) EachSeries(fn func(*windows.SeriesInfo)) {
	for i := range s {
		fn(&s[i])
	}
}

// TestChangesRestoreAsWhole drives an engine with random windows of two
// specs (series evicted and their slots reused, a rule only on the second
// spec, a forest over two metrics, a missing-data rule) and after every
// step restores a new engine from its changes and a base taken a few
// steps before: it must snapshot exactly as the engine it came from, in
// whole and in changes, and then go on exactly as it does. A state
// written without its change mark would restore as it was in the base.
func TestChangesRestoreAsWhole(t *testing.T) {
	const doc = `rules:
  - {name: hot, kind: threshold, metric: a, window: 5m, above: 5, clear: 4}
  - {name: steady, kind: robust, metric: "*", window: 1m, z: 3, history: 12, warmup: 3}
  - {name: pair, kind: forest, metrics: [a, b], window: 1m, shingle: 2, trees: 5, sample: 16, z: 2.5}
  - {name: quiet, kind: missing, metric: b, after: 3m}
`
	specs := []windows.Spec{{Name: "1m", Size: time.Minute, Slide: time.Minute}, {Name: "5m", Size: 5 * time.Minute, Slide: 5 * time.Minute}}
	cfg, err := Parse("rules.yml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	newEngine := func() *Engine {
		e, err := NewEngine(cfg, specs, false, func(a *Alert) { alerts = append(alerts, a.ID+" "+string(a.State)) })
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	rng := rand.New(rand.NewPCG(7, 1))
	e := newEngine()
	gen := make([]uint32, 6) // each slot's current series generation
	var base []byte
	var chain [][]byte // the changes since base
	var live series
	for step := range 2_000 {
		// A window of a random slot, sometimes a new series in it.
		slot := rng.IntN(len(gen))
		if rng.IntN(20) == 0 {
			gen[slot]++
		}
		si := rng.IntN(len(specs))
		min := int64(step)
		w := &windows.Window{Spec: &specs[si], SpecIndex: si, Start: min * 60_000, End: min*60_000 + specs[si].Size.Milliseconds(),
			DeviceID: fmt.Sprintf("d%d", slot/2), Metric: string(rune('a' + slot%2)),
			Series: windows.Handle(uint64(gen[slot])<<32 | uint64(slot)), Device: windows.Handle(slot / 2)}
		v := rng.NormFloat64()
		if rng.IntN(10) == 0 {
			v += 8
		}
		w.Agg = windows.Agg{Count: 1, Sum: v, Min: v, Max: v, Mean: v, First: v, Last: v, FirstTS: w.Start, LastTS: w.Start}
		e.Window(w)
		if step%7 == 0 { // the missing rule's watermark, over what is live now
			live = live[:0]
			for s := range gen {
				last := min*60_000 - int64(rng.IntN(6))*60_000
				live = append(live, windows.SeriesInfo{Series: windows.Handle(uint64(gen[s])<<32 | uint64(s)), Device: windows.Handle(s / 2),
					DeviceID: fmt.Sprintf("d%d", s/2), Metric: string(rune('a' + s%2)), Last: last, DeviceLast: last})
			}
			e.Watermark(min*60_000, live)
		}
		if step%11 == 0 {
			base, chain = e.AppendBase(nil), nil
		}
		chain = append(chain, e.AppendChanges(nil))
		whole := e.AppendSnapshot(nil)
		r := restoreParts(t, newEngine(), base, chain)
		if !bytes.Equal(r.AppendSnapshot(nil), whole) {
			t.Fatalf("step %d: restored from a base and %d changes, the engine snapshots differently", step, len(chain))
		}
		eb, ew, en := e.BaseCost()
		if rb, rw, rn := r.BaseCost(); rb != eb || rw != ew || rn != en || !rb {
			t.Fatalf("step %d: restored base cost %v %d %d, the original's %v %d %d", step, rb, rw, rn, eb, ew, en)
		}
		if step%2 == 0 { // go on with the restored one: it must write what the original would
			next := e.AppendChanges(nil)
			if !bytes.Equal(r.AppendChanges(nil), next) {
				t.Fatalf("step %d: restored from changes, the engine's next changes differ", step)
			}
			chain = append(chain, next)
			e = r
		}
	}
	if len(alerts) < 20 {
		t.Fatalf("only %d alerts: the rules hardly ran", len(alerts))
	}
}

// restoreParts restores e from base and the changes after it.
func restoreParts(t *testing.T, e *Engine, base []byte, changes [][]byte) *Engine {
	t.Helper()
	p, err := e.Parts(base)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range changes {
		if rest, err := p.Apply(c); err != nil || len(rest) != 0 {
			t.Fatalf("changes %d of %d: %v (%d bytes left)", i, len(changes), err, len(rest))
		}
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestChangesRejectCorrupt: changes that do not fit their base fail
// with an error, never a panic or a wrong state.
func TestChangesRejectCorrupt(t *testing.T) {
	f := &feeder{t: t, spec: windows.Spec{Name: "1h", Size: time.Hour, Slide: time.Hour}}
	e := f.engine(before)
	f.window(e, 0, 1)
	base := e.AppendBase(nil)
	f.window(e, 1, 60)
	changes := e.AppendChanges(nil)
	restoreParts(t, f.engine(before), base, [][]byte{changes})
	apply := func(base, changes []byte) error {
		p, err := f.engine(before).Parts(base)
		if err != nil {
			return err
		}
		if _, err := p.Apply(changes); err != nil {
			return err
		}
		return p.Restore()
	}
	if p, err := f.engine(before).Parts(base); err != nil || p.Restore() == nil {
		t.Errorf("a base without its changes restored: %v", err)
	}
	if err := apply(base, base); err == nil {
		t.Error("a base restored as changes")
	}
	if err := apply(changes, changes); err == nil {
		t.Error("changes restored as a base")
	}
	empty := f.engine(before).AppendBase(nil) // no entries: the series is neither held nor changed
	unchanged := f.engine(before)
	f.window(unchanged, 0, 1)
	unchanged.AppendBase(nil) // marks it unchanged
	if err := apply(empty, unchanged.AppendChanges(nil)); err == nil || !strings.Contains(err.Error(), "entries") {
		t.Errorf("changes against another base: %v", err)
	}
	for n := range len(changes) {
		if err := apply(base, changes[:n]); err == nil {
			t.Fatalf("changes cut at %d of %d bytes restored", n, len(changes))
		}
	}
}

// FuzzParts: whatever bytes a state holds (the store is a bucket others
// may write), restoring from them fails with an error or restores; it
// never panics. Seeded with a real base and changes, cut and flipped.
func FuzzParts(f *testing.F) {
	fd := &feeder{spec: windows.Spec{Name: "1h", Size: time.Hour, Slide: time.Hour}}
	newEngine := func() *Engine {
		cfg, err := Parse("rules.yml", []byte(before))
		if err != nil {
			f.Fatal(err)
		}
		e, err := NewEngine(cfg, []windows.Spec{fd.spec}, false, func(*Alert) {})
		if err != nil {
			f.Fatal(err)
		}
		return e
	}
	e := newEngine()
	for h := range 30 {
		fd.window(e, h, float64(h%7))
	}
	base := e.AppendBase(nil)
	fd.window(e, 30, 90)
	changes := e.AppendChanges(nil)
	f.Add(base, changes)
	for _, n := range []int{1, len(changes) / 2, len(changes) - 1} {
		f.Add(base, changes[:n])
		f.Add(base[:len(base)*n/len(changes)], changes)
	}
	flipped := bytes.Clone(changes)
	flipped[len(flipped)/2] ^= 0xff
	f.Add(base, flipped)
	f.Fuzz(func(t *testing.T, base, changes []byte) {
		p, err := newEngine().Parts(base)
		if err != nil {
			return
		}
		if _, err := p.Apply(changes); err != nil {
			return
		}
		_ = p.Restore()
	})
}
