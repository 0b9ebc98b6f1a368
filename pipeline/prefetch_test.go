package pipeline

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
)

func TestLeadingDevice(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"device_id":"pump-7","ts":1}`, "pump-7"},
		{`{"device_id":"x"}`, "x"},
		{`{ "device_id" : "pump-7"}`, "pump-7"},
		{`{"ts":1,"seq":4,"device_id":"pump-7"}`, "pump-7"},
		{`{"device_id":""}`, ""},                                                  // empty: nothing to look up
		{`{"device_id":7}`, ""},                                                   // not a string
		{`{"device_id":"pump-7`, ""},                                              // unterminated
		{`{"device_id":`, ""},                                                     // cut short
		{`{"device_id"`, ""},                                                      // cut shorter
		{`{"device_id":"` + string(make([]byte, 200)) + `"}`, ""},                 // longer than an id can be
		{`{"metrics":{` + strings.Repeat(" ", 120) + `},"device_id":"late"}`, ""}, // beyond the first 128 bytes
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

func TestLeadingDeviceAllocates(t *testing.T) {
	data := []byte(`{"ts":1,"device_id":"pump-7","metrics":{"m":1}}`)
	if n := testing.AllocsPerRun(100, func() { leadingDevice(data) }); n != 0 {
		t.Fatalf("%v allocations a record", n)
	}
}

// FuzzLeadingDevice: any input gives nil or an id inside it of at most
// MaxIDLen bytes without a quote, never a panic.
func FuzzLeadingDevice(f *testing.F) {
	f.Add([]byte(`{"device_id":"pump-7","ts":1}`))
	f.Add([]byte(`{ "device_id" :`))
	f.Add([]byte(`"device_id""device_id":"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		id := leadingDevice(data)
		if id == nil {
			return
		}
		if len(id) == 0 || len(id) > schemas.MaxIDLen || bytes.IndexByte(id, '"') >= 0 || !bytes.Contains(data, id) {
			t.Fatalf("leadingDevice(%q) = %q", data, id)
		}
	})
}
