package main

import (
	"strings"
	"testing"
)

// TestSummary: metrics are read from both sides' rounds, the GOMAXPROCS
// suffix dropped, and summarised by median with the rounds new was lower.
func TestSummary(t *testing.T) {
	var r results
	r.add(0, []byte("goos: linux\nBenchmarkLoop/devices=10k-1   \t 100\t 400.0 ns/op\t 2500000 records/s\nPASS\n"))
	r.add(1, []byte("BenchmarkLoop/devices=10k-1 100 380.0 ns/op 2631579 records/s\n"))
	r.add(0, []byte("BenchmarkLoop/devices=10k-1 100 500 ns/op 2000000 records/s\n"))
	r.add(1, []byte("BenchmarkLoop/devices=10k-1 100 510 ns/op 1960784 records/s\n"))
	r.add(0, []byte("BenchmarkLoop/devices=10k-1 100 420 ns/op 2380952 records/s\n"))
	r.add(1, []byte("BenchmarkLoop/devices=10k-1 100 390 ns/op 2564103 records/s\nBenchmarkOnlyNew 1 5 ns/op\n"))
	var b strings.Builder
	r.print(&b, "abc", ".")
	got := b.String()
	for _, want := range []string{
		"BenchmarkLoop/devices=10k ns/op", "420", "390", "new/old 0.929", "lower 2 of 3",
		"BenchmarkLoop/devices=10k records/s", "lower 1 of 3",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "OnlyNew") {
		t.Errorf("a benchmark one side lacks is summarised:\n%s", got)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median %v", m)
	}
}
