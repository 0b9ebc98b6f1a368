package benchmarks

import (
	"runtime"
	"testing"
	"time"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/pipeline/service"
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

// BenchmarkRestoreParts is BenchmarkRestore from parts, the way a new
// lease owner restores now: a base and the longest chain of states after
// it (pipeline.MaxChain of them, a pass over the dataset cut into as many
// batches), the restore the journal does after reading them.
func BenchmarkRestoreParts(b *testing.B) {
	for _, f := range fleets[:2] {
		b.Run(f.name, func(b *testing.B) {
			p := warmProcessor(b, f.devices)
			base := p.AppendBase(nil)
			ds := dataset(f.devices)
			ds.Shift()
			var chain [][]byte
			per := len(ds.Records)/pipeline.MaxChain + 1
			for i, r := range ds.Records {
				p.Process(r, "", 0)
				if (i+1)%per == 0 || i == len(ds.Records)-1 {
					chain = append(chain, p.AppendSnapshotChanges(nil))
				}
			}
			var stored int
			for _, c := range chain {
				stored += len(c)
			}
			b.ReportAllocs()
			for b.Loop() {
				q := newProcessor(b, nil)
				if err := q.RestoreParts(base, chain); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(chain)), "states")
			b.ReportMetric(float64(len(base)+stored)/(1<<20), "MiB")
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

// BenchmarkSnapshotDefaultRules is the whole snapshot of a shard whose
// series run the default rule set (windows/rules/default.yml: hourly
// windows, seven detectors a series) once their histories are full: 200
// devices of the benchmark dataset's six metrics after ten days of
// 5-minute readings. It reports the snapshot's bytes per series before
// and after the service's compression (journal.CompressState).
func BenchmarkSnapshotDefaultRules(b *testing.B) {
	p, _, _, _ := stateShard(b, rules.Default(), nil)
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

// BenchmarkStates is two hours of such a shard's batches (one a minute,
// batch.flush_every's default), each followed by the state the journal
// stores, the second hour timed: /whole, every open pane and rule
// state in every state, as before; /changes, the journal's way, the panes
// and rule states that changed since the state before, and a base when
// pipeline.Processor.BaseDue says so. Hourly rules change every series'
// states in the few batches that close an hour; between, a state holds
// the panes that took records. It reports
// the stored bytes a series a batch, the time a batch (encoding and
// compression; the records' processing is not timed) and the bases an
// hour. Rules and windows: the default set on its own windows (1h); the
// default set on the service's windows with its own (1m and 5m/1m too,
// so the shard keeps 1-minute panes and an hourly window's sixty of them
// are in every snapshot); the demo's rules on the service's windows.
func BenchmarkStates(b *testing.B) {
	demo, err := rules.Load(rulesFile)
	if err != nil {
		b.Fatal(err)
	}
	serviceSpecs := service.Defaults().Pipeline.Windows.Specs
	for _, c := range []struct {
		name  string
		cfg   *rules.Config
		specs []windows.Spec
	}{
		{"rules=default/windows=1h", rules.Default(), nil},
		{"rules=default/windows=service", rules.Default(), rules.AddDefaultWindows(serviceSpecs)},
		{"rules=demo/windows=service", demo, serviceSpecs},
	} {
		p, opts, records, perMinute := stateShard(b, c.cfg, c.specs)
		series := float64(p.LiveSeries())
		start := p.AppendSnapshot(nil)
		for _, mode := range []string{"whole", "changes"} {
			b.Run(c.name+"/"+mode, func(b *testing.B) {
				var snap []byte
				var stored, bases int
				for b.Loop() {
					b.StopTimer()
					q, err := pipeline.NewProcessor(opts)
					if err != nil {
						b.Fatal(err)
					}
					if err := q.Restore(start); err != nil {
						b.Fatal(err)
					}
					since, baseWM, based := 0, int64(0), false
					for m := range 120 {
						b.StopTimer()
						for _, rec := range records[m*perMinute : (m+1)*perMinute] {
							if err := q.Process(rec, "", 0); err != nil {
								b.Fatal(err)
							}
						}
						timed := m >= 60
						if timed {
							b.StartTimer()
						}
						var n int
						if mode == "whole" {
							snap = q.AppendSnapshot(snap[:0])
							n = len(journal.CompressState(snap))
						} else {
							if !based || q.BaseDue(since, baseWM) {
								snap = q.AppendBase(snap[:0])
								n = len(journal.CompressState(snap))
								since, baseWM, based = 0, q.Watermark(), true
								bases += b2i(timed)
							} else {
								since++
							}
							snap = q.AppendSnapshotChanges(snap[:0])
							n += len(journal.CompressState(snap))
						}
						if timed {
							stored += n
						}
					}
				}
				batches := float64(60 * b.N)
				b.ReportMetric(float64(stored)/batches/series, "stored-B/series/batch")
				b.ReportMetric(float64(b.Elapsed().Microseconds())/batches, "µs/batch")
				b.ReportMetric(float64(bases)/float64(b.N), "bases/hour")
			})
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stateShard is a processor running cfg on specs (nil: the rules' own),
// with the service's allowed lateness, after ten days of 5-minute
// readings of 200 devices, with its options and the next two hours of
// records, perMinute of them a minute.
func stateShard(b *testing.B, cfg *rules.Config, specs []windows.Spec) (p *pipeline.Processor, opts pipeline.Options, next [][]byte, perMinute int) {
	var err error
	if specs == nil {
		if specs, err = cfg.Specs(); err != nil {
			b.Fatal(err)
		}
	}
	lateness := service.Defaults().Pipeline.Windows.AllowedLateness
	opts = pipeline.Options{Shard: "bench", Windows: windows.Options{Specs: specs, AllowedLateness: lateness}, Rules: cfg, DeadLetters: discard{}}
	if p, err = pipeline.NewProcessor(opts); err != nil {
		b.Fatal(err)
	}
	const devices = 200
	warm := devices * 10 * 24 * 12 // ten days of 5-minute readings
	ds := Generate(devices, warm+devices*12*2, 5*time.Minute, 2)
	for _, rec := range ds.Records[:warm] {
		if err := p.Process(rec, "", 0); err != nil {
			b.Fatal(err)
		}
	}
	return p, opts, ds.Records[warm:], devices / 5
}
