package windows

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tapline/tapline/schemas"
)

// specRun feeds records to an Aggregator of specs, restarting it from a
// snapshot under other specs after the first cut records (other: nil
// means no restart), and returns every window delivered by spec name.
func specRun(t *testing.T, specs, other []string, recs []testRec, cut int) map[string]map[string]Agg {
	t.Helper()
	out := &collectBySpec{got: map[string]map[string]Agg{}}
	a, err := New(Options{Specs: mustSpecs(t, specs...), AllowedLateness: 20 * time.Second}, out)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if i == cut && other != nil {
			snap := a.AppendSnapshot(nil)
			if a, err = New(Options{Specs: mustSpecs(t, other...), AllowedLateness: 20 * time.Second}, out); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Restore(snap); err != nil {
				t.Fatal(err)
			}
			// and once more under the same specs: what a restore
			// carries (pending windows, where added specs start) survives
			again, _ := New(Options{Specs: mustSpecs(t, other...), AllowedLateness: 20 * time.Second}, out)
			if _, err := again.Restore(a.AppendSnapshot(nil)); err != nil {
				t.Fatal(err)
			}
			a = again
		}
		a.Add([]byte(r.dev), r.ts, []schemas.Metric{{Name: []byte(r.metric), Value: r.v}})
	}
	a.Flush()
	return out.got
}

type testRec struct {
	dev, metric string
	ts          int64
	v           float64
}

type collectBySpec struct{ got map[string]map[string]Agg }

func (c *collectBySpec) Window(w *Window) {
	m := c.got[w.Spec.Name]
	if m == nil {
		m = map[string]Agg{}
		c.got[w.Spec.Name] = m
	}
	k := fmt.Sprintf("%d %d %s %s", w.Start, w.End, w.DeviceID, w.Metric)
	if _, dup := m[k]; dup {
		panic("window delivered twice: " + w.Spec.Name + " " + k)
	}
	m[k] = w.Agg
}
func (c *collectBySpec) Watermark(int64)    {}
func (c *collectBySpec) Retain(Handle) bool { return false }

// TestRestoreUnderOtherSpecs: a shard restarted with 5m/1m removed and
// 15m/1m and a session spec added keeps its 1m windows exactly (as if it
// had never stopped), delivers 5m/1m's open windows instead of dropping
// them, and the new 15m/1m windows starting after the restart equal those
// of a shard that always had the spec.
func TestRestoreUnderOtherSpecs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	t0 := int64(1_764_000_000_000)
	var recs []testRec
	for i := range 6000 {
		ts := t0 + int64(i)*1000 - int64(rng.IntN(15_000))
		recs = append(recs, testRec{fmt.Sprintf("d%d", rng.IntN(8)), []string{"a", "b"}[rng.IntN(2)], ts, float64(rng.IntN(100))})
	}
	const cut = 2500
	straight := specRun(t, []string{"1m", "5m/1m", "15m/1m", "session:2m"}, nil, recs, 0)
	restarted := specRun(t, []string{"1m", "5m/1m"}, []string{"15m/1m", "1m", "session:2m"}, recs, cut)
	same := func(spec string, keep func(k string) bool) {
		t.Helper()
		n := 0
		for k, w := range straight[spec] {
			if !keep(k) {
				continue
			}
			n++
			if g, ok := restarted[spec][k]; !ok || g != w {
				t.Fatalf("%s %s: %+v after the restart, %+v straight (%v)", spec, k, g, w, ok)
			}
		}
		if n == 0 {
			t.Fatalf("%s: nothing compared", spec)
		}
	}
	all := func(string) bool { return true }
	same("1m", all)
	if len(restarted["1m"]) != len(straight["1m"]) {
		t.Fatalf("1m: %d windows after the restart, %d straight", len(restarted["1m"]), len(straight["1m"]))
	}
	// 15m/1m: from the shard's watermark at the restart on.
	wm := recs[0].ts
	for _, r := range recs[:cut] {
		wm = max(wm, r.ts)
	}
	wm -= 20_000
	var start int64
	same("15m/1m", func(k string) bool { fmt.Sscan(k, &start); return start >= wm })
	for k := range restarted["15m/1m"] {
		if fmt.Sscan(k, &start); start < wm {
			t.Fatalf("15m/1m window %s starts before the restart's watermark %d", k, wm)
		}
	}
	// 5m/1m: everything before the restart, nothing lost: every window a
	// shard without the restart closed by then, and the open ones
	// delivered partial at the restart.
	before := specRun(t, []string{"1m", "5m/1m"}, nil, recs[:cut], 0)
	if len(restarted["5m/1m"]) != len(before["5m/1m"]) {
		t.Fatalf("5m/1m: %d windows delivered with the restart, %d by a shard that ended there", len(restarted["5m/1m"]), len(before["5m/1m"]))
	}
	for k, w := range before["5m/1m"] {
		if g := restarted["5m/1m"][k]; g != w {
			t.Fatalf("5m/1m %s: %+v, want %+v", k, g, w)
		}
	}
}

// TestRestoreUnderOtherPane: a change of the pane cannot keep the panes:
// the restore says so, and the shard starts afresh.
func TestRestoreUnderOtherPane(t *testing.T) {
	a, _ := New(Options{Specs: mustSpecs(t, "1m")}, &collect{})
	a.Add([]byte("d"), 1_764_000_000_000, []schemas.Metric{{Name: []byte("v"), Value: 1}})
	b, _ := New(Options{Specs: mustSpecs(t, "1m", "30s")}, &collect{})
	if _, err := b.Restore(a.AppendSnapshot(nil)); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "pane") {
		t.Fatalf("restore under a finer pane: %v", err)
	}
}
