package rules

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/wire"
)

// feeder drives an engine with hourly windows of one series.
type feeder struct {
	t      *testing.T
	spec   windows.Spec
	alerts []string
}

func (f *feeder) engine(doc string) *Engine {
	f.t.Helper()
	cfg, err := Parse("rules.yml", []byte(doc))
	if err != nil {
		f.t.Fatal(err)
	}
	e, err := NewEngine(cfg, []windows.Spec{f.spec}, false, func(a *Alert) {
		f.alerts = append(f.alerts, fmt.Sprintf("%s %s %s incident=%s reason=%s", a.State, a.Rule, a.Device, a.Incident, a.Reason))
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func (f *feeder) window(e *Engine, hour int, v float64) {
	w := &windows.Window{Spec: &f.spec, SpecIndex: 0, Start: int64(hour) * 3_600_000, End: int64(hour+1) * 3_600_000,
		DeviceID: "d", Metric: "v", Series: windows.Handle(1), Device: windows.Handle(2)}
	w.Agg = windows.Agg{Count: 1, Sum: v, Min: v, Max: v, Mean: v, First: v, Last: v}
	e.Window(w)
}

type noSeries struct{}

func (noSeries) EachSeries(func(*windows.SeriesInfo)) {}

const before = `rules:
  - {name: kept, kind: threshold, metric: v, window: 1h, above: 50}
  - {name: edited, kind: threshold, metric: v, window: 1h, above: 50}
  - {name: removed, kind: threshold, metric: v, window: 1h, above: 40}
  - {name: robust, kind: robust, metric: v, window: 1h, z: 4, history: 24, warmup: 6}
`

// The same rules but: "robust" moved first, "edited" with another level,
// "removed" gone, "added" new.
const after = `rules:
  - {name: robust, kind: robust, metric: v, window: 1h, z: 4, history: 24, warmup: 6}
  - {name: added, kind: threshold, metric: v, window: 1h, above: 55}
  - {name: kept, kind: threshold, metric: v, window: 1h, above: 50}
  - {name: edited, kind: threshold, metric: v, window: 1h, above: 70}
`

// TestRestoreUnderChangedRules: a restore under edited rules keeps the
// state of every unchanged rule (its FIRING alert resolves once, with
// its incident; its detector goes on as if nothing happened), resolves
// the FIRING alerts of the changed and removed rules with their reason
// at the next watermark, counts what it dropped, and starts the added
// rule fresh.
func TestRestoreUnderChangedRules(t *testing.T) {
	spec, _ := windows.ParseSpec("1h")
	values := []float64{10, 11, 9, 10, 12, 10, 9, 11, 10, 60} // the last fires kept, edited, removed, robust

	f := &feeder{t: t, spec: spec}
	e := f.engine(before)
	for h, v := range values {
		f.window(e, h, v)
	}
	firing := map[string]string{}
	for _, a := range f.alerts {
		parts := strings.Fields(a)
		firing[parts[1]] = strings.TrimPrefix(parts[3], "incident=")
	}
	if len(firing) != 4 {
		t.Fatalf("before the restore: %v", f.alerts)
	}
	snap := e.AppendSnapshot(nil)

	// The robust detector as it would go on without a restart.
	straight := &feeder{t: t, spec: spec}
	se := straight.engine(before)
	for h, v := range values {
		straight.window(se, h, v)
	}
	straight.alerts = nil

	f.alerts = nil
	e2 := f.engine(after)
	rest, err := e2.Restore(snap)
	if err != nil || len(rest) != 0 {
		t.Fatalf("restore: %v, %d bytes left", err, len(rest))
	}
	if got := e2.Resets(); got[ReasonRuleChanged] != 1 || got[ReasonRuleRemoved] != 1 || len(got) != 2 {
		t.Fatalf("resets %v, want one changed and one removed", got)
	}
	e2.Watermark(10*3_600_000, noSeries{})
	want := []string{
		"RESOLVED edited d incident=" + firing["edited"] + " reason=rule_changed",
		"RESOLVED removed d incident=" + firing["removed"] + " reason=rule_removed",
	}
	if strings.Join(f.alerts, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after the restore:\n%s\nwant\n%s", strings.Join(f.alerts, "\n"), strings.Join(want, "\n"))
	}
	f.alerts = nil
	for h, v := range []float64{58, 10} {
		f.window(e2, 10+h, v)
		straight.window(se, 10+h, v)
	}
	// 58: kept stays FIRING (no new alert), added (fresh) fires, edited
	// (fresh, at 70) does not; 10: kept resolves with its incident.
	joined := strings.Join(f.alerts, "\n")
	for _, w := range []string{
		"FIRING added d",
		"RESOLVED kept d incident=" + firing["kept"] + " reason=",
	} {
		if !strings.Contains(joined, w) {
			t.Errorf("missing %q in\n%s", w, joined)
		}
	}
	if strings.Count(joined, "kept") != 1 || strings.Contains(joined, "edited") {
		t.Errorf("kept must resolve once, edited stay quiet:\n%s", joined)
	}
	var robust, robustStraight []string
	for _, a := range f.alerts {
		if strings.Contains(a, " robust ") {
			robust = append(robust, a)
		}
	}
	for _, a := range straight.alerts {
		if strings.Contains(a, " robust ") {
			robustStraight = append(robustStraight, a)
		}
	}
	if strings.Join(robust, "\n") != strings.Join(robustStraight, "\n") || len(robust) == 0 {
		t.Errorf("robust after the restore:\n%v\nwithout one:\n%v", robust, robustStraight)
	}

	// A snapshot taken after the restore (the orphans already resolved)
	// restores under the same rules with nothing dropped.
	e3 := f.engine(after)
	if _, err := e3.Restore(e2.AppendSnapshot(nil)); err != nil || len(e3.Resets()) != 0 {
		t.Fatalf("second restore: %v, resets %v", err, e3.Resets())
	}
}

// TestRestoreV1: a snapshot of the previous format (positional, no
// detectors) restores under the rules it was taken with and is refused
// under others.
func TestRestoreV1(t *testing.T) {
	spec, _ := windows.ParseSpec("1h")
	f := &feeder{t: t, spec: spec}
	const doc = "rules:\n  - {name: a, kind: threshold, metric: v, window: 1h, above: 5}\n"
	e := f.engine(doc)
	var w wire.Writer
	w.String(snapshotMagicV1)
	e.fingerprintV1(&w)
	w.Uint(1) // fired
	w.Uint(0)
	w.Uint(2) // series list: index 0 unbound, index 1 bound
	w.Bool(false)
	w.Bool(true)
	w.Uint(uint64(windows.Handle(1)))
	w.Uint(uint64(windows.Handle(2)))
	w.Uint(1)
	w.Uint(0)                    // rule a
	w.Int(0)                     // spec
	w.Uint(uint64(firing))       // phase
	w.Uint(1)                    // hist
	w.Int(0)                     // clearRun
	w.Bool(true)                 // hasPrev
	w.Int(0)                     // prevStart
	w.Float(9)                   // prevVal
	w.Int(0)                     // seen
	w.Float(0)                   // mean
	w.Float(0)                   // vr
	w.String("00000000000000aa") // incident
	w.Uint(0)                    // device list
	e2 := f.engine(doc)
	if _, err := e2.Restore(w.B); err != nil {
		t.Fatal(err)
	}
	f.window(e2, 1, 1) // below 5: resolves the restored FIRING
	if len(f.alerts) != 1 || !strings.HasPrefix(f.alerts[0], "RESOLVED a d incident=00000000000000aa") {
		t.Fatalf("alerts %v", f.alerts)
	}
	other := f.engine("rules:\n  - {name: b, kind: threshold, metric: v, window: 1h, above: 5}\n")
	if _, err := other.Restore(w.B); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("v1 under other rules: %v", err)
	}
}

// TestFiringIncidentsAreBounded: a series evicted while FIRING (its slot
// taken by another) leaves nothing behind in the engine.
func TestFiringIncidentsAreBounded(t *testing.T) {
	spec, _ := windows.ParseSpec("1h")
	f := &feeder{t: t, spec: spec}
	e := f.engine("rules:\n  - {name: hot, kind: threshold, metric: v, window: 1h, above: 5}\n")
	for gen := range 100 {
		h := windows.Handle(uint64(gen)<<32 | 1) // the same slot, a new generation each time
		w := &windows.Window{Spec: &spec, Start: int64(gen) * 3_600_000, End: int64(gen+1) * 3_600_000,
			DeviceID: fmt.Sprintf("d-%d", gen), Metric: "v", Series: h, Device: windows.Handle(2)}
		w.Agg = windows.Agg{Count: 1, Sum: 9, Min: 9, Max: 9, Mean: 9}
		e.Window(w)
	}
	if len(f.alerts) != 100 || len(e.firing) > 1 {
		t.Fatalf("%d alerts, %d incidents remembered", len(f.alerts), len(e.firing))
	}
}

// TestRestoreV2: a snapshot from before repeated notifications
// (testdata/v2.snap: the rules of before, kept, edited and removed firing
// since hour 0, ten hourly windows) restores under the same rules with a
// repeat_interval added to kept (a notification setting: its state is
// kept), and kept repeats three hours after the first window after the
// restart, as the snapshot did not say when it last notified.
func TestRestoreV2(t *testing.T) {
	b, err := os.ReadFile("testdata/v2.snap")
	if err != nil {
		t.Fatal(err)
	}
	f := &feeder{t: t, spec: windows.Spec{Name: "1h", Size: time.Hour, Slide: time.Hour}}
	e := f.engine(strings.Replace(before, "{name: kept, kind: threshold, metric: v, window: 1h, above: 50}",
		"{name: kept, kind: threshold, metric: v, window: 1h, above: 50, repeat_interval: 3h}", 1))
	if rest, err := e.Restore(b); err != nil || len(rest) != 0 {
		t.Fatalf("restore: %v, %d bytes left", err, len(rest))
	}
	if len(e.Resets()) != 0 {
		t.Fatalf("resets %v", e.Resets())
	}
	var repeats []int
	e.emit = func(a *Alert) { repeats = append(repeats, a.Repeat) }
	for h := 10; h < 17; h++ {
		f.window(e, h, 60)
	}
	if fmt.Sprint(repeats) != "[1 2]" {
		t.Fatalf("repeats after the restart: %v, want one at hour 13 and one at 16", repeats)
	}
}

// TestRoutineKeepsState: routine is a notification setting, so adding it
// to a rule (as the default set did) keeps the rule's definition, and so
// its state across a restart.
func TestRoutineKeepsState(t *testing.T) {
	for _, doc := range []string{
		"{name: r, kind: robust, metric: v, window: 1h, z: 2, history: 48}",
		"{name: s, kind: stuck, metric: v, window: 1h}",
		"{name: t, kind: threshold, metric: v, window: 1h, above: 5}",
	} {
		without, err := Parse("a.yml", []byte("rules:\n  - "+doc+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		with, err := Parse("b.yml", []byte("rules:\n  - "+strings.Replace(doc, "}", ", routine: 168h}", 1)+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if with.Rules[0].Routine != 168*time.Hour || with.Rules[0].definition() != without.Rules[0].definition() {
			t.Errorf("%s: routine %v changed the definition", doc, with.Rules[0].Routine)
		}
	}
}
