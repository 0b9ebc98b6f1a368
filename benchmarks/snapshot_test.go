package benchmarks

import (
	"runtime"
	"testing"
	"time"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// BenchmarkSnapshot measures the shard state snapshot the service writes
// with every checkpoint (pipeline.Processor.AppendSnapshot) and the
// restore a new lease owner does, after a pass over the fleet's dataset
// (every series live, windows open). It reports the snapshot's size per
// live series and the time per snapshot; the restore time is in
// BenchmarkRestore.
func BenchmarkSnapshot(b *testing.B) {
	for _, f := range fleets[:3] {
		b.Run(f.name, func(b *testing.B) {
			p := warmProcessor(b, f.devices)
			var snap []byte
			b.ReportAllocs()
			for b.Loop() {
				snap = p.AppendSnapshot(snap[:0])
			}
			b.ReportMetric(float64(len(snap))/float64(p.LiveSeries()), "B/series")
			b.ReportMetric(float64(len(snap))/(1<<20), "MiB")
			runtime.KeepAlive(p)
		})
	}
}

// BenchmarkRestore is the other half: a new Processor restored from the
// snapshot.
func BenchmarkRestore(b *testing.B) {
	for _, f := range fleets[:3] {
		b.Run(f.name, func(b *testing.B) {
			snap := warmProcessor(b, f.devices).AppendSnapshot(nil)
			b.ReportAllocs()
			for b.Loop() {
				q := newProcessor(b, nil)
				if err := q.Restore(snap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// warmProcessor is a processor after one pass over the fleet's dataset:
// every series live, windows open.
func warmProcessor(b *testing.B, devices int) *pipeline.Processor {
	p := newProcessor(b, nil)
	for _, r := range dataset(devices).Records {
		p.Process(r, "", 0)
	}
	return p
}

// BenchmarkSnapshotCompress is the compression the service applies to a
// snapshot before storing it (journal.CompressState).
func BenchmarkSnapshotCompress(b *testing.B) {
	for _, f := range fleets[:3] {
		b.Run(f.name, func(b *testing.B) {
			snap := warmProcessor(b, f.devices).AppendSnapshot(nil)
			var stored []byte
			b.ReportAllocs()
			for b.Loop() {
				stored = journal.CompressState(snap)
			}
			b.ReportMetric(float64(len(stored))/(1<<20), "MiB")
			b.ReportMetric(float64(len(snap))/float64(len(stored)), "ratio")
		})
	}
}

// BenchmarkSnapshotDefaultRules is the snapshot of a shard whose series
// run the default rule set (windows/rules/default.yml: hourly windows,
// seven detectors a series) once their histories are full: 200 devices
// of the benchmark dataset's six metrics after ten days of 5-minute
// readings. The detectors' state rides in every snapshot, every batch,
// though it changes only when an hourly window closes. It reports the snapshot's bytes per series
// before and after the service's compression (journal.CompressState).
func BenchmarkSnapshotDefaultRules(b *testing.B) {
	cfg := rules.Default()
	specs, err := cfg.Specs()
	if err != nil {
		b.Fatal(err)
	}
	p, err := pipeline.NewProcessor(pipeline.Options{Shard: "bench", Windows: windows.Options{Specs: specs}, Rules: cfg, DeadLetters: discard{}})
	if err != nil {
		b.Fatal(err)
	}
	const devices = 200
	for _, rec := range Generate(devices, devices*10*24*12, 5*time.Minute, 2).Records {
		if err := p.Process(rec, "", 0); err != nil {
			b.Fatal(err)
		}
	}
	var snap []byte
	b.ReportAllocs()
	for b.Loop() {
		snap = p.AppendSnapshot(snap[:0])
	}
	series := float64(p.LiveSeries())
	b.ReportMetric(float64(len(snap))/series, "B/series")
	b.ReportMetric(float64(len(journal.CompressState(snap)))/series, "stored-B/series")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/series, "ns/series")
}
