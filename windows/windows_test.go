package windows

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tapline/tapline/schemas"
)

// collect is an Output that records windows as text.
type collect struct {
	lines []string
	keys  []string
	aggs  map[string]Agg
}

func (c *collect) Window(w *Window) {
	key := fmt.Sprintf("%s %d %d %s %s", w.Spec.Name, w.Start, w.End, w.DeviceID, w.Metric)
	c.keys = append(c.keys, key)
	if c.aggs == nil {
		c.aggs = map[string]Agg{}
	}
	c.aggs[key] = w.Agg
	c.lines = append(c.lines, fmt.Sprintf("%s %+v", key, w.Agg))
}
func (c *collect) Watermark(int64)    {}
func (c *collect) Retain(Handle) bool { return false }

func mustSpecs(t testing.TB, names ...string) []Spec {
	var specs []Spec
	for _, n := range names {
		s, err := ParseSpec(n)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	return specs
}

func TestAggMergeEqualsSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(50)
		var whole Agg
		parts := make([]Agg, 1+rng.IntN(5))
		for i := 0; i < n; i++ {
			ts := int64(rng.IntN(1000))
			v := rng.NormFloat64()*1e3 + 1e6 // large offset: naive variance would cancel
			whole.Add(ts, v)
			parts[rng.IntN(len(parts))].Add(ts, v)
		}
		var merged Agg
		for i := range parts {
			merged.Merge(&parts[i])
		}
		if merged.Count != whole.Count || merged.Min != whole.Min || merged.Max != whole.Max ||
			merged.FirstTS != whole.FirstTS || merged.LastTS != whole.LastTS {
			t.Fatalf("merge %+v != sequential %+v", merged, whole)
		}
		if !close(merged.Sum, whole.Sum, 1e-12) || !close(merged.Mean, whole.Mean, 1e-12) || !close(merged.Stddev(), whole.Stddev(), 1e-6) {
			t.Fatalf("merge %+v != sequential %+v", merged, whole)
		}
	}
}

func close(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// TestWindowsMatchBruteForce feeds random out-of-order records and checks
// every emitted window against windows computed naively from the records
// the aggregator accepted: panes, the ring and hopping merges must add up.
func TestWindowsMatchBruteForce(t *testing.T) {
	for _, tc := range []struct {
		specs    []string
		lateness time.Duration
	}{
		{[]string{"1m"}, 0},
		{[]string{"1m"}, 25 * time.Second},
		{[]string{"1m", "5m/1m"}, 10 * time.Second},
		{[]string{"30s", "2m/30s", "90s/45s"}, 2 * time.Minute},
	} {
		t.Run(strings.Join(tc.specs, ","), func(t *testing.T) {
			out := &collect{}
			specs := mustSpecs(t, tc.specs...)
			a, err := New(Options{Specs: specs, AllowedLateness: tc.lateness}, out)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			want := map[string]*Agg{}
			now := int64(1_700_000_000_000)
			devices := []string{"d1", "d2", "d3"}
			for i := 0; i < 5000; i++ {
				now += int64(rng.IntN(3000))
				ts := now - int64(rng.IntN(int(tc.lateness.Milliseconds())+20000)) // some late
				dev := devices[rng.IntN(len(devices))]
				ms := []schemas.Metric{{Name: []byte("m"), Value: float64(rng.IntN(100))}}
				if rng.IntN(2) == 0 {
					ms = append(ms, schemas.Metric{Name: []byte("a"), Value: rng.Float64()})
				}
				if a.Add([]byte(dev), ts, ms) == Late {
					continue
				}
				for _, sp := range specs {
					size, slide := sp.Size.Milliseconds(), sp.Slide.Milliseconds()
					for start := floorDiv(ts, slide) * slide; start > ts-size; start -= slide {
						for _, m := range ms {
							k := fmt.Sprintf("%s %d %d %s %s", sp.Name, start, start+size, dev, m.Name)
							if want[k] == nil {
								want[k] = &Agg{}
							}
							want[k].Add(ts, m.Value)
						}
					}
				}
			}
			a.Flush()
			sameWindows(t, out.aggs, want)
			st := a.Stats()
			if st.Late == 0 || st.OutOfOrder == 0 {
				t.Fatalf("test data should include late and out-of-order records: %+v", st)
			}
		})
	}
}

// TestEmissionOrder checks that each device's windows come in (end,
// metric, spec) order, that the devices a Flush closes come in id order,
// and that the same input gives the same output.
func TestEmissionOrder(t *testing.T) {
	run := func() []string {
		out := &collect{}
		a, _ := New(Options{Specs: mustSpecs(t, "2m/1m", "1m")}, out)
		for i, dev := range []string{"zeta", "alpha", "mid", "alpha"} {
			a.Add([]byte(dev), int64(i)*1000, []schemas.Metric{{Name: []byte("y"), Value: 1}, {Name: []byte("x"), Value: 2}})
		}
		a.Add([]byte("beta"), 70_000, []schemas.Metric{{Name: []byte("x"), Value: 1}})
		a.Flush()
		return out.keys
	}
	first := run()
	if !slices.Equal(first, run()) {
		t.Fatal("same input, different output")
	}
	type key struct {
		end                   int64
		dev, metric, specName string
	}
	var keys []key
	for _, k := range first {
		var sp, dev, m string
		var start, end int64
		fmt.Sscanf(k, "%s %d %d %s %s", &sp, &start, &end, &dev, &m)
		keys = append(keys, key{end, dev, m, sp})
	}
	specOrder := map[string]int{"2m/1m": 0, "1m": 1}
	byDevice := map[string][]key{}
	var flushed []string // devices in the order Flush closed them
	for _, k := range keys {
		if len(byDevice[k.dev]) == 0 {
			flushed = append(flushed, k.dev)
		}
		byDevice[k.dev] = append(byDevice[k.dev], k)
	}
	for dev, ks := range byDevice {
		if !slices.IsSortedFunc(ks, func(x, y key) int {
			if c := int(x.end - y.end); c != 0 {
				return c
			}
			if c := strings.Compare(x.metric, y.metric); c != 0 {
				return c
			}
			return specOrder[x.specName] - specOrder[y.specName]
		}) {
			t.Fatalf("%s: not in (end, metric, spec) order:\n%s", dev, strings.Join(first, "\n"))
		}
	}
	// beta's record at 70s closes nothing of the others' (each device
	// has its own time), so every device's first window comes from Flush.
	if !slices.IsSorted(flushed) {
		t.Fatalf("Flush closed devices in order %v, want id order:\n%s", flushed, strings.Join(first, "\n"))
	}
}

func TestAddZeroAlloc(t *testing.T) {
	a, _ := New(Options{Specs: mustSpecs(t, "1m", "5m/1m"), AllowedLateness: 10 * time.Second}, &collect{})
	ms := []schemas.Metric{{Name: []byte("flow"), Value: 1}, {Name: []byte("temp"), Value: 4}, {Name: []byte("kpa"), Value: 101}}
	ids := [][]byte{[]byte("keg-1"), []byte("keg-2"), []byte("keg-3")}
	ts := int64(1_700_000_000_000)
	for _, id := range ids {
		a.Add(id, ts, ms) // create the series
	}
	allocs := testing.AllocsPerRun(1000, func() {
		ts += 10 // stays inside one pane: steady state, no boundary
		for _, id := range ids {
			a.Add(id, ts, ms)
		}
	})
	if allocs != 0 {
		t.Fatalf("Add allocates %.1f times per run, want 0", allocs)
	}
}

func TestSeriesLimit(t *testing.T) {
	a, _ := New(Options{Specs: mustSpecs(t, "1m"), MaxSeries: 2}, &collect{})
	two := []schemas.Metric{{Name: []byte("a"), Value: 1}, {Name: []byte("b"), Value: 1}}
	if c := a.Add([]byte("d1"), 1000, two); c != InOrder {
		t.Fatalf("first device: %v", c)
	}
	if c := a.Add([]byte("d2"), 1000, two[:1]); c != SeriesLimit {
		t.Fatalf("third series: %v, want series_limit", c)
	}
	if c := a.Add([]byte("d1"), 2000, two); c != InOrder {
		t.Fatalf("existing series: %v", c)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, "at least one window"},
		{Options{Specs: []Spec{{Name: "x", Size: time.Minute, Slide: 2 * time.Minute}}}, "longer than size"},
		{Options{Specs: []Spec{{Name: "x", Size: time.Minute, Slide: 40 * time.Second}}}, "not a multiple"},
		{Options{Specs: mustSpecs(t, "1m", "1m")}, "listed twice"},
		{Options{Specs: mustSpecs(t, "1m"), AllowedLateness: -time.Second}, "lateness"},
		{Options{Specs: mustSpecs(t, "1m"), ExpectedDevices: -1}, "expected_devices"},
		{Options{Specs: mustSpecs(t, "1m"), ExpectedDevices: 1 << 30}, "expected_devices"},
	} {
		err := tc.opts.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := ParseSpec("15m/1m"); err != nil {
		t.Error(err)
	}
	if _, err := ParseSpec("soon"); err == nil {
		t.Error("ParseSpec accepted soon")
	}
}

// sameWindows checks that got holds exactly the windows of want, computed
// naively from the records accepted.
func sameWindows(t *testing.T, got map[string]Agg, want map[string]*Agg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("emitted %d windows, want %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("window %s not emitted", k)
		}
		if g.Count != w.Count || g.Min != w.Min || g.Max != w.Max || !close(g.Sum, w.Sum, 1e-9) ||
			g.FirstTS != w.FirstTS || g.LastTS != w.LastTS {
			t.Fatalf("window %s = %+v, want %+v", k, g, *w)
		}
	}
}

// TestExpectedDevices: the hint sizes the tables once (no device is
// copied by growth while the fleet fits) and changes nothing else: the
// same windows and the same snapshot as without it.
func TestExpectedDevices(t *testing.T) {
	const n = 3000
	run := func(hint int) (*Aggregator, *collect, int) {
		out := &collect{}
		a, err := New(Options{Specs: mustSpecs(t, "1m", "5m/1m"), ExpectedDevices: hint}, out)
		if err != nil {
			t.Fatal(err)
		}
		first, grown := unsafe.SliceData(a.devices), 0
		slots := len(a.devs.slots)
		rng := rand.New(rand.NewPCG(5, 6))
		for i := range 4 * n {
			ms := []schemas.Metric{{Name: []byte("m"), Value: float64(rng.IntN(100))}, {Name: []byte("a"), Value: rng.Float64()}}
			a.Add(fmt.Appendf(nil, "dev-%d", rng.IntN(n)), 1_700_000_000_000+int64(i)*50, ms)
			if len(a.devs.slots) != slots {
				grown++
				slots = len(a.devs.slots)
			}
		}
		if unsafe.SliceData(a.devices) != first {
			grown++
		}
		a.Flush()
		return a, out, grown
	}
	hinted, withHint, grown := run(n)
	if grown != 0 {
		t.Errorf("with the hint the tables grew %d times", grown)
	}
	plain, without, grownPlain := run(0)
	if grownPlain == 0 {
		t.Fatal("without the hint the tables never grew: the test proves nothing")
	}
	if !slices.Equal(withHint.lines, without.lines) || len(without.lines) == 0 {
		t.Fatalf("%d windows with the hint, %d without, or they differ", len(withHint.lines), len(without.lines))
	}
	if !slices.Equal(hinted.AppendSnapshot(nil), plain.AppendSnapshot(nil)) {
		t.Fatal("the snapshots differ")
	}
}
