package benchmarks

import (
	"runtime"
	"testing"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/journal"
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
