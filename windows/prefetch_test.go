package windows

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tapline/tapline/schemas"
)

// TestPrefetch: a fleet large enough for Prefetch to work, fed the same
// records twice, once with every record announced a few records ahead
// (and, between them, ids that are wrong, unknown or empty): the same
// windows and the same state.
func TestPrefetch(t *testing.T) {
	n := prefetchDevices + 4000
	ids := make([][]byte, n)
	for i := range ids {
		ids[i] = fmt.Appendf(nil, "dev-%06d", i)
	}
	order := make([]int, 0, 3*n) // three records a device, devices shuffled each round
	rng := rand.New(rand.NewPCG(7, 8))
	for range 3 {
		order = append(order, rng.Perm(n)...)
	}
	run := func(ahead bool) (*Aggregator, *collect, int) {
		out := &collect{}
		a, err := New(Options{Specs: mustSpecs(t, "1m")}, out)
		if err != nil {
			t.Fatal(err)
		}
		prefetched := 0
		for i, dev := range order {
			if ahead && a.Prefetching() {
				prefetched++
				if i+4 < len(order) {
					a.Prefetch(ids[order[i+4]])
				}
				switch i % 7 {
				case 0:
					a.Prefetch([]byte("no-such-device"))
				case 1:
					a.Prefetch(nil)
				case 2:
					a.Prefetch(ids[(dev+1)%n])
				}
			}
			ms := []schemas.Metric{{Name: []byte("m"), Value: float64(i % 97)}}
			a.Add(ids[dev], 1_700_000_000_000+int64(i)*2, ms)
		}
		a.Flush()
		return a, out, prefetched
	}
	plain, without, _ := run(false)
	hinted, with, prefetched := run(true)
	if prefetched < 2*n {
		t.Fatalf("Prefetch worked for %d of %d records: the test proves nothing", prefetched, len(order))
	}
	if !slices.Equal(with.lines, without.lines) || len(without.lines) < n {
		t.Fatalf("%d windows with Prefetch, %d without, or they differ", len(with.lines), len(without.lines))
	}
	if !slices.Equal(hinted.AppendSnapshot(nil), plain.AppendSnapshot(nil)) {
		t.Fatal("the snapshots differ")
	}
}
