package pipeline

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tapline/tapline/windows"
)

func TestLeadingDevice(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"device_id":"pump-7","ts":1}`, "pump-7"},
		{`{"device_id":"x"}`, "x"},
		{`{"device_id":""}`, ""},                                  // empty: nothing to look up
		{`{ "device_id":"pump-7"}`, ""},                           // not the exact prefix
		{`{"ts":1,"device_id":"pump-7"}`, ""},                     // not first
		{`{"device_id":"pump-7`, ""},                              // unterminated
		{`{"device_id":`, ""},                                     // cut short
		{`{"device_id":"` + string(make([]byte, 200)) + `"}`, ""}, // longer than an id can be
	} {
		if got := string(leadingDevice([]byte(c.in))); got != c.want {
			t.Errorf("leadingDevice(%.40q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestProcessBatchPrefetches: with a fleet large enough for Prefetch to
// work, ProcessBatch (which names each record a few ahead) gives what
// Process alone gives.
func TestProcessBatchPrefetches(t *testing.T) {
	const devices = 70_000
	var in []Input
	for round := range 2 {
		for d := range devices {
			i := round*devices + d
			in = append(in, Input{Data: fmt.Appendf(nil, `{"device_id":"dev-%06d","ts":%d,"metrics":{"m":%d}}`,
				(d*7919)%devices, 1_700_000_000_000+int64(i)*3, i%101)})
		}
	}
	run := func(batch bool) ([]string, *Processor) {
		var got []string
		p := newTestProcessor(t, &letters{}, func(w *windows.Window) {
			got = append(got, fmt.Sprintf("%s %s %d %d %g", w.DeviceID, w.Metric, w.Start, w.Count, w.Sum))
		})
		if batch {
			if err := p.ProcessBatch(in); err != nil {
				t.Fatal(err)
			}
		} else {
			for _, r := range in {
				if err := p.Process(r.Data, r.Seq, r.Arrival); err != nil {
					t.Fatal(err)
				}
			}
		}
		p.Flush()
		return got, p
	}
	want, _ := run(false)
	got, p := run(true)
	if !p.agg.Prefetching() {
		t.Fatal("Prefetch is off at this fleet size: the test proves nothing")
	}
	if len(want) < devices || !slices.Equal(got, want) {
		t.Fatalf("ProcessBatch gave %d windows, Process %d, or they differ", len(got), len(want))
	}
}
