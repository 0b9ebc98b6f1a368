package detect

import (
	"testing"
)

// BenchmarkObserve is the cost of one window's evaluation by each
// detector (score and learn) in steady state, and its memory per series
// (B/series, from Size), with the default set's parameters where it has
// them and the forest's defaults (20 trees, 64 points, shingles of 4).
func BenchmarkObserve(b *testing.B) {
	v := signal(4096)
	for _, c := range []struct {
		name string
		mk   func() Detector
	}{
		{"robust-96", func() Detector { return NewRobust(96, 24, FromMedian) }},
		{"robust-range-96", func() Detector { return NewRobust(96, 24, FromRange) }},
		{"seasonal-24", func() Detector { return NewNovel(NewSeasonal(24*hour, hour, 0.05, 0.1, 48), 72, 24, 1.5) }},
		{"cusum", func() Detector { return NewCUSUM(1.5, 4, 0.02, 24) }},
		{"forest-20x64x4", func() Detector { return NewForest(1, 4, 20, 64, 0.05, 32, 1) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := c.mk()
			for i := range 512 { // warm: full history, full sample
				d.Observe(int64(i)*hour, v[i])
			}
			b.ReportAllocs()
			i := 512
			for b.Loop() {
				d.Observe(int64(i)*hour, v[i%len(v)])
				i++
			}
			b.ReportMetric(float64(d.Size()), "B/series")
		})
	}
}
