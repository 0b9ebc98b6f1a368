package benchmarks

import (
	"fmt"
	"testing"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
)

type noOutput struct{}

func (noOutput) Window(*windows.Window)     {}
func (noOutput) Watermark(int64)            {}
func (noOutput) Retain(windows.Handle) bool { return false }

func hostileAggregator(b *testing.B, perDevice int) *windows.Aggregator {
	b.Helper()
	spec, _ := windows.ParseSpec("1m")
	a, err := windows.New(windows.Options{Specs: []windows.Spec{spec}, MaxSeriesPerDevice: perDevice}, noOutput{})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func freshNames(from, n int) []schemas.Metric {
	ms := make([]schemas.Metric, n)
	for i := range ms {
		ms[i] = schemas.Metric{Name: fmt.Appendf(nil, "m%d", from+i), Value: 1}
	}
	return ms
}

// BenchmarkHostileDevice is the per-record cost of a device at its series
// bound that keeps sending 256 metrics it has never sent: each record is
// looked up (256 binary searches) and refused. It bounds what such a
// device costs the shard per record.
func BenchmarkHostileDevice(b *testing.B) {
	a := hostileAggregator(b, windows.DefaultMaxSeriesPerDevice)
	t0 := int64(1_764_000_000_000)
	for i := range windows.DefaultMaxSeriesPerDevice / 256 {
		a.Add([]byte("keg-evil"), t0, freshNames(i*256, 256))
	}
	recs := make([][]schemas.Metric, 64)
	for i := range recs {
		recs[i] = freshNames(1_000_000+i*256, 256)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if a.Add([]byte("keg-evil"), t0, recs[i%len(recs)]) != windows.DeviceLimit {
			b.Fatal("a record past the bound was accepted")
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkEvictLargeDevices is the record that closes a window and
// evicts 16 devices of 65,535 series each (the largest per-device bound)
// past their TTL: the worst single record eviction can cost. It took
// 29.8 s when eviction deleted one slot at a time.
func BenchmarkEvictLargeDevices(b *testing.B) {
	const devices, perDevice = 16, 65535
	t0 := int64(1_764_000_000_000)
	// Setup dwarfs the timed record, so the timer runs only around it
	// (b.Loop needs a running timer).
	for range b.N {
		b.StopTimer()
		a := hostileAggregator(b, perDevice)
		for d := range devices {
			for k := 0; k < perDevice; k += 255 {
				a.Add(fmt.Appendf(nil, "keg-%d", d), t0, freshNames(k, min(255, perDevice-k)))
			}
		}
		if a.LiveSeries() != devices*perDevice {
			b.Fatalf("%d live series", a.LiveSeries())
		}
		b.StartTimer()
		a.Add([]byte("keg-late"), t0+2*3_600_000, freshNames(0, 1)) // past the 1h TTL
		b.StopTimer()
		if a.LiveSeries() != 1 {
			b.Fatalf("%d live series after the TTL", a.LiveSeries())
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(devices*perDevice), "series-evicted")
}
