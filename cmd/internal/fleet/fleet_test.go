package fleet

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/command"
)

func TestDeterministicAndValid(t *testing.T) {
	opts := Options{Devices: 20, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Seed: 42, BadRate: 0.05, LateRate: 0.01, JitterRate: 0.1,
		Faults: []Fault{{Kind: Leak, Device: 1, From: time.Minute}, {Kind: Offline, Device: 2, From: 2 * time.Minute}}}
	run := func() []Record {
		f := New(opts)
		var out []Record
		for i := 0; i < 60; i++ {
			out, _ = f.Step(out)
		}
		return out
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatalf("runs differ in length: %d vs %d", len(a), len(b))
	}
	dec := schemas.NewDecoder(schemas.Options{})
	bad, offlineLate := 0, 0
	for i := range a {
		if !bytes.Equal(a[i].Data, b[i].Data) || a[i].Arrival != b[i].Arrival {
			t.Fatalf("record %d differs between runs with the same seed", i)
		}
		r, err := dec.Decode(a[i].Data, a[i].Arrival)
		if err != nil {
			bad++
			continue
		}
		if string(r.DeviceID) == DeviceID(2) && r.Time > opts.Start.Add(2*time.Minute+10*time.Second).UnixMilli() {
			offlineLate++
		}
	}
	if bad == 0 || bad > len(a)/10 {
		t.Fatalf("%d malformed of %d, want about 5%%", bad, len(a))
	}
	if offlineLate != 0 {
		t.Fatalf("offline keg sent %d records after going offline", offlineLate)
	}
}

// decodeAll steps the fleet n ticks and decodes every record.
func decodeAll(t *testing.T, f *Fleet, n int) []schemas.Record {
	t.Helper()
	dec := schemas.NewDecoder(schemas.Options{MaxFutureSkew: time.Hour})
	var out []schemas.Record
	var batch []Record
	for range n {
		batch, _ = f.Step(batch[:0])
		for _, r := range batch {
			rec, err := dec.Decode(r.Data, r.Arrival)
			if err != nil {
				continue
			}
			cp := *rec
			cp.DeviceID = append([]byte(nil), rec.DeviceID...)
			cp.Metrics = append([]schemas.Metric(nil), rec.Metrics...)
			for i := range cp.Metrics {
				cp.Metrics[i].Name = append([]byte(nil), rec.Metrics[i].Name...)
			}
			out = append(out, cp)
		}
	}
	return out
}

func metric(r schemas.Record, name string) float64 {
	for _, m := range r.Metrics {
		if string(m.Name) == name {
			return m.Value
		}
	}
	return -1
}

// Closing the valve stops a leak; a repeated command changes nothing; an
// unknown state is refused.
func TestValveCommandStopsTheLeak(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := New(Options{Devices: 3, Start: start, Seed: 1, Faults: []Fault{{Kind: Leak, Device: 1}}})
	leaking := 0
	for _, r := range decodeAll(t, f, 30) {
		if string(r.DeviceID) == "keg-0002" && metric(r, "flow_lpm") > 0 && metric(r, "flow_lpm") < 1 {
			leaking++
		}
	}
	if leaking == 0 {
		t.Fatal("the leaking keg shows no leak")
	}
	c := &command.Command{ID: "00000000000000aa", DeviceID: "keg-0002", Action: "close_valve", Desired: map[string]string{"valve": "closed"}}
	if changed, err := f.Apply(c); !changed || err != nil {
		t.Fatalf("Apply = %v, %v", changed, err)
	}
	if changed, err := f.Apply(c); changed || err != nil {
		t.Fatalf("the same command again = %v, %v; want no change", changed, err)
	}
	for _, r := range decodeAll(t, f, 30) {
		if string(r.DeviceID) == "keg-0002" && metric(r, "flow_lpm") != 0 {
			t.Fatalf("flow %v with the valve closed", metric(r, "flow_lpm"))
		}
	}
	if got := f.Reported("keg-0002")["valve"]; got != "closed" {
		t.Fatalf("reported valve %q", got)
	}
	if _, err := f.Apply(&command.Command{ID: "00000000000000bb", DeviceID: "keg-0002", Desired: map[string]string{"self_destruct": "now"}}); err == nil {
		t.Fatal("an unknown state was applied")
	}
}

func TestScenarios(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := New(Options{Devices: 200, Start: start, Seed: 1, Faults: []Fault{
		{Kind: StuckSensor, Device: 0}, {Kind: ClockSkew, Device: 1}, {Kind: Duplicate, Device: 2},
		{Kind: CoolerFailure, Fraction: 0.1},
	}})
	recs := decodeAll(t, f, 60)
	temps := map[float64]bool{}
	perDevice := map[string]int{}
	for _, r := range recs {
		id := string(r.DeviceID)
		perDevice[id]++
		switch id {
		case "keg-0001":
			temps[metric(r, "temp_c")] = true
		case "keg-0002":
			if r.Time < start.Add(10*time.Minute).UnixMilli() {
				t.Fatalf("skewed keg sent event time %v", time.UnixMilli(r.Time))
			}
		}
	}
	if len(temps) != 1 {
		t.Errorf("stuck sensor reported %d distinct temperatures", len(temps))
	}
	if perDevice["keg-0003"] != 2*perDevice["keg-0004"] {
		t.Errorf("duplicating keg sent %d records, a normal one %d", perDevice["keg-0003"], perDevice["keg-0004"])
	}
	failing := 0
	for i := range 200 {
		if f.faulty(i, CoolerFailure) {
			failing++
		}
	}
	if failing < 10 || failing > 30 {
		t.Errorf("cooler failure on %d of 200 kegs, want about 10%%", failing)
	}
}

func TestSensorProfile(t *testing.T) {
	f := New(Options{Profile: Sensor, Devices: 5, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Seed: 3,
		Faults: []Fault{{Kind: StuckSensor, Device: 0}}})
	recs := decodeAll(t, f, 30)
	if len(recs) != 150 {
		t.Fatalf("%d records, want 150", len(recs))
	}
	for _, r := range recs {
		if !strings.HasPrefix(string(r.DeviceID), "sensor-") || metric(r, "humidity_pct") < 0 || metric(r, "temp_c") < 10 || metric(r, "temp_c") > 30 {
			t.Fatalf("sensor record %s %v", r.DeviceID, r.Metrics)
		}
	}
}
