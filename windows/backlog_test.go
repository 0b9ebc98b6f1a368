package windows

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tapline/tapline/schemas"
)

// TestBacklogIsAggregated: devices live on the shard run half an hour
// ahead of a gateway that comes back online and uploads what its pumps
// buffered. Every buffered record lands in its pump's own windows (none is
// late), and every window equals the one computed from the records alone.
// Before, one watermark per shard made 94% of such a backlog late.
func TestBacklogIsAggregated(t *testing.T) {
	out := &collect{}
	a, err := New(Options{Specs: mustSpecs(t, "1m", "5m/1m"), AllowedLateness: 30 * time.Second}, out)
	if err != nil {
		t.Fatal(err)
	}
	t0 := int64(1_764_000_000_000) // a minute boundary
	want := map[string]*Agg{}
	add := func(dev string, ts int64, v float64) {
		t.Helper()
		ms := []schemas.Metric{{Name: []byte("flow"), Value: v}}
		if c := a.Add([]byte(dev), ts, ms); c == Late {
			t.Fatalf("%s at %d: late", dev, ts-t0)
		}
		for _, sp := range a.opts.Specs {
			size, slide := sp.Size.Milliseconds(), sp.Slide.Milliseconds()
			for start := floorDiv(ts, slide) * slide; start > ts-size; start -= slide {
				k := fmt.Sprintf("%s %d %d %s flow", sp.Name, start, start+size, dev)
				if want[k] == nil {
					want[k] = &Agg{}
				}
				want[k].Add(ts, v)
			}
		}
	}
	const minute = int64(time.Minute / time.Millisecond)
	// The pumps sent live until the gateway went down at t0 + 30m.
	for s := int64(0); s < 30*60; s += 10 {
		for p := range 5 {
			add(fmt.Sprintf("pump-%d", p), t0+s*1000, float64(s))
		}
	}
	// An hour of the fleet: the shard's watermark is half an hour past
	// the pumps' last record.
	for s := int64(0); s < 60*60; s += 10 {
		for d := range 20 {
			add(fmt.Sprintf("keg-%02d", d), t0+s*1000, 1)
		}
	}
	// The gateway's backlog, pump after pump, interleaved with live data.
	live := t0 + 60*minute
	for p := range 5 {
		for s := int64(30 * 60); s < 60*60; s += 10 {
			add(fmt.Sprintf("pump-%d", p), t0+s*1000, float64(s))
			if s%600 == 0 {
				live += 1000
				add("keg-00", live, 1)
			}
		}
	}
	if st := a.Stats(); st.Late != 0 || st.OutOfOrder != 0 {
		t.Fatalf("late %d, out of order %d", st.Late, st.OutOfOrder)
	}
	// A record a pump's own windows have passed is late; one older than
	// MaxBacklog behind the shard is late for a new device too.
	if c := a.Add([]byte("pump-0"), t0+50*minute, []schemas.Metric{{Name: []byte("flow"), Value: 1}}); c != Late {
		t.Fatalf("a record behind its device's watermark: %v", c)
	}
	if c := a.Add([]byte("pump-new"), t0+60*minute-DefaultMaxBacklog.Milliseconds()-2*minute, []schemas.Metric{{Name: []byte("flow"), Value: 1}}); c != Late {
		t.Fatalf("a record beyond the backlog: %v", c)
	}
	// A snapshot taken here restores to the same state, byte for byte.
	snap := a.AppendSnapshot(nil)
	b, _ := New(a.opts, &collect{})
	if _, err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if string(b.AppendSnapshot(nil)) != string(snap) {
		t.Fatal("restored state differs")
	}
	a.Flush()
	sameWindows(t, out.aggs, want)
}

// TestSilentDeviceWaitsForItsBacklog: the window holding a silent
// device's last record stays open for MaxBacklog of the shard's time, so
// a backlog that continues where the device stopped is aggregated; then
// it closes, and the device's series are evicted after the TTL.
func TestSilentDeviceWaitsForItsBacklog(t *testing.T) {
	out := &collect{}
	a, err := New(Options{Specs: mustSpecs(t, "1m"), MaxBacklog: time.Hour, SeriesTTL: 10 * time.Minute}, out)
	if err != nil {
		t.Fatal(err)
	}
	t0 := int64(1_764_000_000_000)
	const minute = int64(time.Minute / time.Millisecond)
	m := []schemas.Metric{{Name: []byte("v"), Value: 1}}
	a.Add([]byte("quiet"), t0+10_000, m)
	for i := range int64(50) {
		a.Add([]byte("busy"), t0+i*minute, m)
	}
	key := fmt.Sprintf("1m %d %d quiet v", t0, t0+minute)
	if _, ok := out.aggs[key]; ok {
		t.Fatal("the silent device's last window closed before MaxBacklog")
	}
	if a.LiveSeries() != 2 {
		t.Fatalf("%d live series: the silent one went, its window open, at the TTL", a.LiveSeries())
	}
	// Its backlog continues in the open window: aggregated.
	if c := a.Add([]byte("quiet"), t0+20_000, m); c != InOrder {
		t.Fatalf("backlog record: %v", c)
	}
	for i := int64(50); i < 70; i++ {
		a.Add([]byte("busy"), t0+i*minute, m)
	}
	if got, ok := out.aggs[key]; !ok || got.Count != 2 {
		t.Fatalf("after MaxBacklog the window is %+v, want 2 records", got)
	}
	if a.LiveSeries() != 1 {
		t.Fatalf("%d live series after the TTL", a.LiveSeries())
	}
}

// TestVersion1SnapshotRestores: a snapshot from before per-device time
// (testdata/v1.snap: one watermark per shard; device k at 0:10 and 1:01
// of 1m windows, and its record of 1:01 still open) restores with every
// device closed where the shard was, and goes on.
func TestVersion1SnapshotRestores(t *testing.T) {
	snap, err := os.ReadFile("testdata/v1.snap")
	if err != nil {
		t.Fatal(err)
	}
	out := &collect{}
	a, _ := New(Options{Specs: mustSpecs(t, "1m")}, out)
	if _, err := a.Restore(snap); err != nil {
		t.Fatal(err)
	}
	t0 := int64(1_764_000_000_000)
	m := []schemas.Metric{{Name: []byte("v"), Value: 2}}
	if c := a.Add([]byte("k"), t0+50_000, m); c != Late {
		t.Fatalf("a record for the closed window: %v", c)
	}
	if c := a.Add([]byte("k"), t0+62_000, m); c != InOrder {
		t.Fatalf("a record for the open window: %v", c)
	}
	a.Flush()
	got, ok := out.aggs[fmt.Sprintf("1m %d %d k v", t0+60_000, t0+120_000)]
	if !ok || got.Count != 2 || got.Sum != 3 {
		t.Fatalf("the open window after restore: %+v", got)
	}
}

func TestSessionSpecs(t *testing.T) {
	sp, err := ParseSpec("session:5m")
	if err != nil || !sp.Session() || sp.Gap != 5*time.Minute || sp.Size != 0 || sp.Slide != 0 {
		t.Fatalf("session:5m: %+v, %v", sp, err)
	}
	for _, bad := range []string{"session:0s", "session:-1m", "session:25h", "session:1.5ms", "session:x"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
