package fleet

import (
	"bytes"
	"testing"
	"time"

	"github.com/tapline/tapline/schemas"
)

func TestDeterministicAndValid(t *testing.T) {
	opts := Options{Devices: 20, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Seed: 42, BadRate: 0.05, LateRate: 0.01, JitterRate: 0.1,
		Faults: []Fault{{Leak, 1, time.Minute}, {Offline, 2, 2 * time.Minute}}}
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
