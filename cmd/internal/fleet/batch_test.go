package fleet

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

type discard struct{ n int }

func (d *discard) Write(*schemas.DeadLetter) error { d.n++; return nil }

// TestBatchedFleetSameResults: a fleet whose kegs send ten readings a
// message gives the windows and alerts the same fleet gives one reading a
// message, with every kind of fault and malformed, late and jittered
// records, through the pipeline's Processor; and so does either with a
// keg that sends everything twice, whose second copies are all counted
// as duplicates and nothing else. A missing-data alert's time is the
// shard watermark at which it was noticed, which batching delays
// (readings arrive up to ten intervals later): those compare by rule,
// device, state and incident.
func TestBatchedFleetSameResults(t *testing.T) {
	cfg, err := rules.Parse("rules.yml", []byte(`rules:
  - {name: leak, kind: threshold, metric: flow_lpm, window: 1m, aggregate: min, above: 0.05, clear: 0.01, for: 2}
  - {name: warm, kind: threshold, metric: temp_c, window: 5m/1m, aggregate: min, above: 7, clear: 5, m_of_n: {m: 3, n: 4}}
  - {name: glitch, kind: zscore, metric: temp_c, window: 1m, z: 6, clear_z: 3, warmup: 10}
  - {name: gas, kind: rate, metric: pressure_kpa, window: 1m, below: -20}
  - {name: offline, kind: missing, after: 5m}
`))
	if err != nil {
		t.Fatal(err)
	}
	run := func(batch int, dup bool) (wins, alerts []string, st pipeline.Stats, letters, injected int) {
		specs := []windows.Spec{}
		for _, s := range []string{"1m", "5m/1m"} {
			sp, _ := windows.ParseSpec(s)
			specs = append(specs, sp)
		}
		dl := &discard{}
		p, err := pipeline.NewProcessor(pipeline.Options{
			Windows:     windows.Options{Specs: specs, AllowedLateness: 30 * time.Second},
			Rules:       cfg,
			DeadLetters: dl,
			OnWindow: func(w *windows.Window) {
				wins = append(wins, fmt.Sprintf("%s %d %s %s %d %g %g %g %d %d", w.Spec.Name, w.Start, w.DeviceID, w.Metric, w.Count, w.Sum, w.Min, w.Max, w.FirstTS, w.LastTS))
			},
			OnAlert: func(a *rules.Alert) {
				if a.Kind == string(rules.Missing) {
					alerts = append(alerts, fmt.Sprintf("%s %s %s %s", a.Rule, a.Device, a.State, a.Incident))
					return
				}
				alerts = append(alerts, fmt.Sprintf("%s %s %s %s %d %g %s", a.Rule, a.Device, a.Metric, a.State, a.At, a.Value, a.Incident))
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		faults := []Fault{{Kind: Leak, Device: 6, From: 20 * time.Minute}, {Kind: CoolerFailure, Device: 12, From: 30 * time.Minute},
			{Kind: Offline, Device: 20, From: 45 * time.Minute}, {Kind: GasEmpty, Device: 30, From: 60 * time.Minute},
			{Kind: SensorGlitch, Device: 40, From: 80 * time.Minute}}
		if dup {
			faults = append(faults, Fault{Kind: Duplicate, Device: 50}, Fault{Kind: Duplicate, Device: 6})
		}
		f := New(Options{Devices: 60, Start: time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC), Seed: 7, Batch: batch,
			BadRate: 0.001, LateRate: 0.0005, JitterRate: 0.02, Faults: faults})
		var recs []Record
		seq := 0
		feed := func() {
			for _, r := range recs {
				seq++
				p.Process(r.Data, strconv.Itoa(seq), r.Arrival)
			}
		}
		for f.Elapsed() < 2*time.Hour {
			recs, _ = f.Step(recs[:0])
			feed()
		}
		recs = f.Flush(recs[:0])
		feed()
		p.Flush()
		slices.Sort(wins)
		slices.Sort(alerts)
		return wins, alerts, p.Stats(), dl.n, f.Duplicated
	}
	w1, a1, s1, d1, _ := run(0, false)
	for _, c := range []struct {
		batch int
		dup   bool
	}{{10, false}, {0, true}, {10, true}} {
		w, a, s, d, injected := run(c.batch, c.dup)
		if c.batch > 0 && (s.Readings == 0 || s.Records*5 > s1.Records) {
			t.Fatalf("batched: %d messages, %d readings; unbatched %d records", s.Records, s.Readings, s1.Records)
		}
		if !slices.Equal(w1, w) {
			t.Fatalf("batch %d, duplicates %v: windows differ: %d, want %d", c.batch, c.dup, len(w), len(w1))
		}
		if !slices.Equal(a1, a) {
			t.Fatalf("batch %d, duplicates %v: alerts differ:\n%v\nwant\n%v", c.batch, c.dup, a, a1)
		}
		if s.Accepted != s1.Accepted || int(s.Windows.Duplicate) != injected || c.dup != (injected > 0) {
			t.Fatalf("batch %d, duplicates %v: accepted %d, want %d; %d duplicates, %d injected", c.batch, c.dup, s.Accepted, s1.Accepted, s.Windows.Duplicate, injected)
		}
		t.Logf("batch %d, duplicates %v: %d messages (%d readings in batches), %d accepted, %d dead letters (%d without), %d duplicates of %d injected, %d windows, %d alerts",
			c.batch, c.dup, s.Records, s.Readings, s.Accepted, d, d1, s.Windows.Duplicate, injected, len(w), len(a))
	}
}
