package windows

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tapline/tapline/schemas"
)

// TestPartsRestoreAsWhole feeds random records (devices that go silent
// and are evicted, slots reused, out-of-order and late records, a
// backlog, sketches) and after every few records writes the changes,
// with a base now and then; a new Aggregator restored from the base and
// the changes since must snapshot exactly as the original, and the two
// must then write the same windows and the same next changes. A pane
// written after a snapshot of changes without its series being in the
// next would restore as it was.
func TestPartsRestoreAsWhole(t *testing.T) {
	for _, quantiles := range []bool{false, true} {
		t.Run(fmt.Sprint("quantiles=", quantiles), func(t *testing.T) {
			opts := Options{Specs: mustSpecs(t, "1m", "5m/1m", "15m"), AllowedLateness: 30 * time.Second, SeriesTTL: 20 * time.Minute, MaxBacklog: 10 * time.Minute, Quantiles: quantiles}
			a, err := New(opts, &collect{})
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, uint64(len(opts.Specs))))
			t0 := int64(1_764_000_000_000)
			var base []byte
			var chain [][]byte
			now, restores := t0, 0
			var total Stats // over the aggregators in turn
			for step := range 6_000 {
				dev := rng.IntN(12)
				if dev >= 8 && (step/1500)%2 == 0 {
					dev = rng.IntN(8) // devices 8-11 go silent for a while, long enough to be evicted
				}
				now += int64(rng.IntN(4_000))
				ts := now - int64(dev)*20_000
				switch rng.IntN(40) {
				case 0:
					ts -= 120_000 // late for most
				case 1:
					ts -= 20_000 // out of order
				}
				ms := []schemas.Metric{{Name: []byte("a"), Value: rng.NormFloat64()}}
				if rng.IntN(3) == 0 {
					ms = append(ms, schemas.Metric{Name: []byte("b"), Value: rng.Float64()})
				}
				a.Add(fmt.Appendf(nil, "d%d", dev), ts, ms)
				if step%7 != 0 {
					continue
				}
				if base == nil || rng.IntN(15) == 0 {
					base, chain = a.AppendBase(nil), nil
				}
				chain = append(chain, a.AppendChanges(nil))
				whole := a.AppendSnapshot(nil)
				out := &collect{}
				r, err := New(opts, out)
				if err != nil {
					t.Fatal(err)
				}
				p, err := r.Parts(base)
				if err != nil {
					t.Fatal(err)
				}
				for i, c := range chain {
					if rest, err := p.Apply(c); err != nil || len(rest) != 0 {
						t.Fatalf("step %d: changes %d of %d: %v (%d bytes left)", step, i, len(chain), err, len(rest))
					}
				}
				if err := p.Restore(); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if !bytes.Equal(r.AppendSnapshot(nil), whole) {
					t.Fatalf("step %d: restored from a base and %d changes, the aggregator snapshots differently", step, len(chain))
				}
				ab, aw, an := a.BaseCost()
				if rb, rw, rn := r.BaseCost(); rb != ab || rw != aw || rn != an || !rb {
					t.Fatalf("step %d: restored base cost %v %d %d, the original's %v %d %d", step, rb, rw, rn, ab, aw, an)
				}
				restores++
				// Go on with the restored one half of the time: what it
				// writes next must match what the original would.
				if rng.IntN(2) == 0 {
					a.out, r.out = &collect{}, &collect{}
					na, nr := a.AppendChanges(nil), r.AppendChanges(nil)
					if !bytes.Equal(na, nr) {
						t.Fatalf("step %d: the restored aggregator's next changes differ", step)
					}
					chain = append(chain, na)
					st := a.Stats()
					total.Evicted, total.Late, total.OutOfOrder = total.Evicted+st.Evicted, total.Late+st.Late, total.OutOfOrder+st.OutOfOrder
					a = r
				}
			}
			if restores < 500 || total.Evicted == 0 || total.Late == 0 || total.OutOfOrder == 0 {
				t.Fatalf("too little exercised: %d restores, stats %+v", restores, total)
			}
			t.Logf("%d restores; evicted %d, late %d, out of order %d", restores, total.Evicted, total.Late, total.OutOfOrder)
		})
	}
}

// FuzzParts: whatever bytes a state holds (the store is a bucket others
// may write), restoring from them fails with an error or restores; it
// never panics. Seeded with a real base and changes, cut and flipped.
func FuzzParts(f *testing.F) {
	opts := Options{Specs: mustSpecs(f, "1m", "5m/1m"), AllowedLateness: 30 * time.Second, Quantiles: true}
	a, err := New(opts, &collect{})
	if err != nil {
		f.Fatal(err)
	}
	t0 := int64(1_764_000_000_000)
	for i := range 200 {
		a.Add(fmt.Appendf(nil, "d%d", i%5), t0+int64(i)*3_000, []schemas.Metric{{Name: []byte("a"), Value: float64(i)}})
	}
	base := a.AppendBase(nil)
	for i := range 50 {
		a.Add(fmt.Appendf(nil, "d%d", i%5), t0+600_000+int64(i)*3_000, []schemas.Metric{{Name: []byte("a"), Value: float64(i)}})
	}
	changes := a.AppendChanges(nil)
	f.Add(base, changes)
	for _, n := range []int{1, 10, len(changes) / 2, len(changes) - 1} {
		f.Add(base, changes[:n])
		f.Add(base[:len(base)*n/len(changes)], changes)
	}
	flipped := bytes.Clone(changes)
	flipped[len(flipped)/3] ^= 0xff
	f.Add(base, flipped)
	f.Fuzz(func(t *testing.T, base, changes []byte) {
		r, err := New(opts, &collect{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.Parts(base)
		if err != nil {
			return
		}
		if _, err := p.Apply(changes); err != nil {
			return
		}
		_ = p.Restore()
	})
}
