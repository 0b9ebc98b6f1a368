package windows

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/tapline/tapline/schemas"
)

// names returns n metrics named prefix0, prefix1, ...
func names(prefix string, from, n int) []schemas.Metric {
	ms := make([]schemas.Metric, n)
	for i := range ms {
		ms[i] = schemas.Metric{Name: fmt.Appendf(nil, "%s%d", prefix, from+i), Value: 1}
	}
	return ms
}

// TestOneDeviceIsBounded: one device sending fresh metric names (256 per
// record) cannot grow the shard past its per-device bound, the records of
// other devices around it are aggregated, and once its series pass the
// TTL they are evicted and their names released. Before, the device's
// series counter wrapped at 65,536 and the series past it leaked.
func TestOneDeviceIsBounded(t *testing.T) {
	a, err := New(Options{Specs: mustSpecs(t, "1m")}, &collect{})
	if err != nil {
		t.Fatal(err)
	}
	good := []schemas.Metric{{Name: []byte("flow_lpm"), Value: 1}, {Name: []byte("temp_c"), Value: 4}}
	t0 := int64(1_764_000_000_000)
	for i := range 300 {
		ts := t0 + int64(i)*1000
		c := a.Add([]byte("keg-evil"), ts, names("m", i*256, 256))
		if want := (i >= DefaultMaxSeriesPerDevice/256); (c == DeviceLimit) != want {
			t.Fatalf("record %d of the evil device: class %v", i, c)
		}
		if c := a.Add([]byte("keg-good"), ts, good); c != InOrder {
			t.Fatalf("record %d of a good device: class %v", i, c)
		}
	}
	if a.LiveSeries() != DefaultMaxSeriesPerDevice+2 || a.Stats().DeviceLimit != 300-DefaultMaxSeriesPerDevice/256 {
		t.Fatalf("%d live series, %d refused", a.LiveSeries(), a.Stats().DeviceLimit)
	}
	// A record of metrics the device has is still accepted at the bound.
	if c := a.Add([]byte("keg-evil"), t0+300_000, names("m", 0, 256)); c == DeviceLimit {
		t.Fatal("a record of known metrics refused at the bound")
	}
	// Past the TTL and MaxBacklog (the last window of a silent device
	// waits that long for its backlog) the evil device's series go, and
	// their names with them.
	a.Add([]byte("keg-good"), t0+int64((DefaultMaxBacklog+2*time.Hour)/time.Millisecond), good)
	if a.LiveSeries() != 2 || len(a.metricIndex) != 2 || len(a.freeMetrics) != DefaultMaxSeriesPerDevice {
		t.Fatalf("after the TTL: %d live series, %d interned names, %d free", a.LiveSeries(), len(a.metricIndex), len(a.freeMetrics))
	}
	// A restored aggregator has the same bounded state, byte for byte.
	snap := a.AppendSnapshot(nil)
	b, _ := New(Options{Specs: mustSpecs(t, "1m")}, &collect{})
	if _, err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.AppendSnapshot(nil), snap) || len(b.metricIndex) != 2 || len(b.freeMetrics) != len(a.freeMetrics) {
		t.Fatal("the restored aggregator differs")
	}
	// Both reuse the lowest released name index first.
	a.Add([]byte("keg-new"), t0+3*int64(time.Hour/time.Millisecond), names("x", 0, 1))
	b.Add([]byte("keg-new"), t0+3*int64(time.Hour/time.Millisecond), names("x", 0, 1))
	if !bytes.Equal(a.AppendSnapshot(nil), b.AppendSnapshot(nil)) {
		t.Fatal("a name interned after a restore took another index")
	}
}

// TestNoWrapAtTheLargestBound: at the largest per-device bound the series
// count cannot wrap, and a metric sent again after the bound is the same
// series, not a second one.
func TestNoWrapAtTheLargestBound(t *testing.T) {
	a, err := New(Options{Specs: mustSpecs(t, "1m"), MaxSeriesPerDevice: 65535}, &collect{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := int64(1_764_000_000_000)
	for i := range 280 { // 71,680 names
		a.Add([]byte("keg-evil"), t0+int64(i), names("m", i*256, 256))
	}
	live := a.LiveSeries()
	if live > 65535 || a.Stats().DeviceLimit == 0 {
		t.Fatalf("%d live series, %d refused", live, a.Stats().DeviceLimit)
	}
	a.Add([]byte("keg-evil"), t0+300, names("m", 0, 1))
	if a.LiveSeries() != live {
		t.Fatalf("the first metric again: %d live series, was %d", a.LiveSeries(), live)
	}
	if _, err := New(Options{Specs: mustSpecs(t, "1m"), MaxSeriesPerDevice: 65536}, &collect{}); err == nil {
		t.Fatal("a bound the counter cannot hold was accepted")
	}
}

// TestFreeIndexesLowestFirst: released indexes come back lowest first in
// any order of release.
func TestFreeIndexesLowestFirst(t *testing.T) {
	var h freeIndexes
	for _, v := range []uint32{9, 3, 7, 1, 8, 2, 2, 6} {
		h.push(v)
	}
	var got []uint32
	for v, ok := h.pop(); ok; v, ok = h.pop() {
		got = append(got, v)
	}
	if fmt.Sprint(got) != "[1 2 2 3 6 7 8 9]" {
		t.Fatalf("popped %v", got)
	}
}
