package detect

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tapline/tapline/windows/wire"
)

const hour = int64(3_600_000)

// signal is a noisy daily cycle (hourly windows) with a spike at hour
// 200: the shape every detector is tested on.
func signal(n int) []float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	v := make([]float64, n)
	for i := range v {
		v[i] = 50 + 20*math.Sin(2*math.Pi*float64(i%24)/24) + rng.NormFloat64()
	}
	v[200] += 40
	return v
}

func detectors() map[string]func() Detector {
	return map[string]func() Detector{
		"robust":       func() Detector { return NewRobust(48, 12, FromMedian) },
		"robust-range": func() Detector { return NewRobust(48, 12, FromRange) },
		"robust-below": func() Detector { return NewRobust(48, 12, FromBelow) },
		"seasonal":     func() Detector { return NewSeasonal(24*hour, hour, 0.05, 0.1, 48) },
		"cusum":        func() Detector { return NewCUSUM(0.5, 5, 0.02, 24) },
		"forest":       func() Detector { return NewForest(1, 4, 20, 128, 0.05, 32, 7) },
		"novel":        func() Detector { return NewNovel(NewRobust(48, 12, FromRange), 24, 0, 0) },
		"novel-warmup": func() Detector { return NewNovel(NewRobust(48, 12, FromRange), 24, 10, 0) },
	}
}

// TestRestoreEveryWindow: a detector restored from a snapshot taken after
// any window scores the rest exactly as the one that never stopped.
func TestRestoreEveryWindow(t *testing.T) {
	v := signal(260)
	for name, mk := range detectors() {
		t.Run(name, func(t *testing.T) {
			straight := mk()
			var want []float64
			for i, x := range v {
				s, _ := straight.Observe(int64(i)*hour, x)
				want = append(want, s)
			}
			d := mk()
			for i, x := range v {
				s, _ := d.Observe(int64(i)*hour, x)
				if s != want[i] {
					t.Fatalf("window %d: score %v after restores, %v straight", i, s, want[i])
				}
				var w wire.Writer
				d.Append(&w)
				d = mk()
				r := wire.Reader{B: w.B}
				d.Restore(&r)
				if r.Err() != nil || len(r.B) != 0 {
					t.Fatalf("window %d: restore: %v, %d bytes left", i, r.Err(), len(r.B))
				}
			}
		})
	}
}

// TestSpike: each spike detector scores the spike far above every other
// window after warm-up (for the forest, every window whose shingle
// does not hold the spike).
func TestSpike(t *testing.T) {
	v := signal(260)
	for _, name := range []string{"robust", "robust-range", "seasonal", "forest", "novel"} {
		d := detectors()[name]()
		var spike, rest float64
		for i, x := range v {
			s, ok := d.Observe(int64(i)*hour, x)
			switch {
			case i == 200:
				spike = math.Abs(s)
			case ok && i > 100 && (i < 200 || i > 203): // the forest's shingles hold the spike 4 windows
				rest = max(rest, math.Abs(s))
			}
		}
		if !(spike > 2*rest) {
			t.Errorf("%s: spike scores %.3g, other windows up to %.3g", name, spike, rest)
		}
	}
}

// TestRobustOneSide: FromBelow scores only values below the history's
// smallest, FromAbove only above its largest, FromRange both, with the
// same score as the one-sided detector on its side.
func TestRobustOneSide(t *testing.T) {
	for _, c := range []struct {
		v            float64
		below, above bool
	}{{-5, true, false}, {20, false, true}, {2, false, false}} {
		score := map[From]float64{}
		for _, from := range []From{FromRange, FromBelow, FromAbove} {
			d := NewRobust(10, 10, from)
			for i := range 10 {
				d.Observe(int64(i)*hour, float64(i%5))
			}
			s, ok := d.Observe(10*hour, c.v)
			if !ok {
				t.Fatalf("from %d: no score after the warm-up", from)
			}
			score[from] = s
		}
		if (score[FromBelow] != 0) != c.below || (score[FromAbove] != 0) != c.above {
			t.Errorf("%v: below scores %v, above %v", c.v, score[FromBelow], score[FromAbove])
		}
		if score[FromRange] != score[FromBelow]+score[FromAbove] {
			t.Errorf("%v: range scores %v, below %v and above %v", c.v, score[FromRange], score[FromBelow], score[FromAbove])
		}
	}
}

// TestRobustOrderMatchesSorting: the history kept as slots in value
// order gives the median, scale and range a sort of the last K values
// gives, with ties (values from a small set) and without, through the
// ring's wrap and a restore.
func TestRobustOrderMatchesSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, distinct := range []int{3, 1 << 30} {
		d := NewRobust(17, 1, FromMedian)
		var all []float64
		for i := range 400 {
			v := float64(rng.IntN(distinct)) / 4
			d.learn(v)
			all = append(all, v)
			if i == 200 {
				var w wire.Writer
				d.Append(&w)
				d = NewRobust(17, 1, FromMedian)
				d.Restore(&wire.Reader{B: w.B})
			}
			last := slices.Clone(all[max(0, len(all)-17):])
			slices.Sort(last)
			n := len(last)
			med := (last[(n-1)/2] + last[n/2]) / 2
			if got := d.median(); got != med {
				t.Fatalf("distinct %d, value %d: median %v, want %v", distinct, i, got, med)
			}
			if d.at(0) != last[0] || d.at(n-1) != last[n-1] {
				t.Fatalf("distinct %d, value %d: range [%v, %v], want [%v, %v]", distinct, i, d.at(0), d.at(n-1), last[0], last[n-1])
			}
			if n >= 2 {
				devs := make([]float64, n)
				for k, x := range last {
					devs[k] = math.Abs(x - med)
				}
				slices.Sort(devs)
				want := madScale * (devs[(n-1)/2] + devs[n/2]) / 2
				if want == 0 {
					var sum float64
					for _, x := range devs {
						sum += x
					}
					want = math.Sqrt(math.Pi/2) * sum / float64(n)
				}
				if got := d.mad(); math.Abs(got-want) > 1e-12*max(1, want) {
					t.Fatalf("distinct %d, value %d: scale %v, want %v", distinct, i, got, want)
				}
			}
		}
	}
}

// TestForestAttribution: of two metrics that move together, the one
// that jumps gets most of the forest's score.
func TestForestAttribution(t *testing.T) {
	f := NewForest(2, 2, 20, 64, 0.05, 32, 3)
	rng := rand.New(rand.NewPCG(3, 4))
	var score float64
	for i := range 300 {
		a := 10 + 3*math.Sin(float64(i)/5) + 0.1*rng.NormFloat64()
		b := 2*a + 0.1*rng.NormFloat64()
		if i == 299 {
			b = 2*a + 15 // b decouples from a
		}
		score, _ = f.ObserveVector(int64(i)*hour, []float64{a, b})
	}
	at := f.Attribution()
	if score < 3 || at[1] < 0.6 || math.Abs(at[0]+at[1]-1) > 1e-9 {
		t.Fatalf("score %.3g, attribution %v: want a high score credited to metric 1", score, at)
	}
}

// TestForestTreesStayConsistent: after many inserts and deletes every
// tree's root holds the whole sample.
func TestForestTreesStayConsistent(t *testing.T) {
	f := NewForest(1, 3, 5, 16, 0.05, 4, 9)
	for i, x := range signal(500) {
		f.Observe(int64(i)*hour, math.Round(x/5)*5) // duplicates too
		for _, tr := range f.trees {
			if tr.root != none && int(tr.nodes[tr.root].mass) != f.count {
				t.Fatalf("window %d: root mass %d, sample %d", i, tr.nodes[tr.root].mass, f.count)
			}
			if len(tr.nodes)-len(tr.free) > 2*f.sample {
				t.Fatalf("window %d: %d live nodes for %d points", i, len(tr.nodes)-len(tr.free), f.count)
			}
		}
	}
}

// TestNoveltyWarmup: for its first warmup scored windows the novelty
// peak learns and passes nothing (not ok); after, a score passes only
// by what it exceeds the learnt peak, where without a warmup the first
// ordinary scores pass whole.
func TestNoveltyWarmup(t *testing.T) {
	scores := []float64{0, 3, 2, 3, 1, 2, 5, 1}
	plain, warm := NewNovel(&fixed{s: scores}, 1000, 0, 0), NewNovel(&fixed{s: scores}, 1000, 4, 0)
	var gotPlain, gotWarm []float64
	for i := range scores {
		s, ok := plain.Observe(int64(i), 0)
		gotPlain = append(gotPlain, s)
		if !ok {
			t.Fatalf("window %d: not ok without a warmup", i)
		}
		s, ok = warm.Observe(int64(i), 0)
		if ok != (i >= 4) {
			t.Fatalf("window %d: ok %v with a warmup of 4", i, ok)
		}
		gotWarm = append(gotWarm, s)
	}
	// The peak decays by 2^(-1/1000) a window: 3 is still above 2.99.
	if gotPlain[1] != 3 || gotWarm[1] != 0 || gotWarm[4] != 0 || gotWarm[5] != 0 || math.Abs(gotWarm[6]-2) > 0.01 || gotWarm[7] != 0 {
		t.Fatalf("without warmup %v, with %v", gotPlain, gotWarm)
	}
}

// TestNoveltyRise: with a rise factor, a spike lifts the learnt peak by
// that factor only, so a second spike days later passes about as the
// first did, where without it the first spike's score hides the second;
// a lasting rise is still learnt within a few windows.
func TestNoveltyRise(t *testing.T) {
	scores := []float64{2, 2, 10, 2, 2, 2, 10, 2, 10, 10, 10, 10, 10, 10}
	plain, rise := NewNovel(&fixed{s: scores}, 1000, 2, 0), NewNovel(&fixed{s: scores}, 1000, 2, 1.5)
	var gotPlain, gotRise []float64
	for i := range scores {
		s, _ := plain.Observe(int64(i), 0)
		gotPlain = append(gotPlain, s)
		s, _ = rise.Observe(int64(i), 0)
		gotRise = append(gotRise, s)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 0.05 }
	// The first spike passes by 8 either way; the second (window 6)
	// passes by 7 with the rise bounded (the peak went 2 -> 3), and not
	// at all without (the peak has decayed from 10 only a little).
	if !near(gotPlain[2], 8) || !near(gotRise[2], 8) || !near(gotPlain[6], 0) || !near(gotRise[6], 7) {
		t.Fatalf("without a rise factor %v, with 1.5 %v", gotPlain, gotRise)
	}
	// From window 8 on the scores stay at 10: the bounded peak climbs
	// 3 -> 4.5 -> 6.75 -> 10.1 and the scores stop passing.
	if gotRise[8] == 0 || gotRise[len(scores)-1] != 0 || gotRise[len(scores)-2] != 0 {
		t.Fatalf("a lasting rise is not learnt: %v", gotRise)
	}
}

// TestNoveltyIgnoresFlatHistoryScores: a change off a perfectly flat
// history scores the largest float; learnt, that peak would take a
// thousand half-lives to decay (NAB's ec2_disk_write_bytes_1ef3de: a
// first day of zeros, then nothing from its extreme rule for 16 days).
// It passes, but the peak keeps what it had learnt before.
func TestNoveltyIgnoresFlatHistoryScores(t *testing.T) {
	scores := []float64{2, math.MaxFloat64, 2, 1, 6, -math.MaxFloat64, 6}
	n := NewNovel(&fixed{s: scores}, 1000, 3, 1.5)
	var got []float64
	for i := range scores {
		s, _ := n.Observe(int64(i), 0)
		got = append(got, s)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 0.05 }
	// Warmup learns 2 (not the MaxFloat64 of window 1); window 4's 6
	// passes by 4 and lifts the peak to 3; the flat-history score
	// passes whole and leaves it there, so window 6's 6 passes by 3.
	if !near(got[4], 4) || got[5] != -math.MaxFloat64 || !near(got[6], 3) {
		t.Fatalf("scores %v passed as %v", scores, got)
	}
}

// TestNoveltyRestoreForgetsPoisonedPeak: a snapshot whose peak was
// learnt from a flat history's score (before Observe refused to learn
// them) restores as a novelty that learns its peak again, warmup
// included, instead of one that hides every score for years.
func TestNoveltyRestoreForgetsPoisonedPeak(t *testing.T) {
	scores := []float64{2, 2, 2, 9}
	n := NewNovel(&fixed{s: scores}, 72, 3, 1.5)
	var w wire.Writer
	w.Float(math.MaxFloat64 * math.Pow(0.5, 100.0/72)) // a hundred windows after it was learnt
	w.Uint(3)                                          // warmup over
	w.Uint(0)                                          // fixed's position
	r := wire.Reader{B: w.B}
	n.Restore(&r)
	var got []float64
	for range scores {
		s, _ := n.Observe(0, 0)
		got = append(got, s)
	}
	if got[0] != 0 || got[2] != 0 || math.Abs(got[3]-7) > 0.1 {
		t.Fatalf("after restoring a poisoned peak: %v", got)
	}
}

// fixed is a detector that returns the scores it was given, one a window.
type fixed struct {
	s []float64
	i int
}

func (f *fixed) Observe(int64, float64) (float64, bool) { f.i++; return f.s[f.i-1], true }
func (f *fixed) Append(w *wire.Writer)                  { w.Uint(uint64(f.i)) }
func (f *fixed) Restore(r *wire.Reader)                 { f.i = int(r.Uint()) }
func (f *fixed) Size() int                              { return 8 }

// TestStuck: a flat window is stuck only after history varied windows in
// a row, stays stuck while flat, and a series flat now and then (every
// night) never is; a detector restored after every window agrees.
func TestStuck(t *testing.T) {
	const history = 6
	cases := []struct {
		name   string
		ranges string // one window each: '.' varied, '_' flat
		stuck  string // '!' where the window is stuck
	}{
		{"young series", "___...___", "........."},
		{"froze after varying", "......___.", "......!!!."},
		{"one short of history", ".....__", "......."},
		{"flat every night", "....__....__....__..", "...................."},
		{"froze twice", "......_......__", "......!......!!"},
		{"varying again resets", "......._.._", ".......!..."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			straight, restored := NewStuck(history), NewStuck(history)
			for i, w := range c.ranges {
				rng := 0.0
				if w == '.' {
					rng = 0.5
				}
				s, ok := straight.Observe(int64(i)*hour, rng)
				if want := c.stuck[i] == '!'; !ok || (s == 1) != want {
					t.Fatalf("window %d (%s): score %v ok %v, want stuck %v", i, c.ranges[:i+1], s, ok, want)
				}
				if r, _ := restored.Observe(int64(i)*hour, rng); r != s {
					t.Fatalf("window %d: %v after restores, %v straight", i, r, s)
				}
				var wr wire.Writer
				restored.Append(&wr)
				restored = NewStuck(history)
				rd := wire.Reader{B: wr.B}
				restored.Restore(&rd)
				if rd.Err() != nil || len(rd.B) != 0 {
					t.Fatalf("window %d: restore: %v, %d bytes left", i, rd.Err(), len(rd.B))
				}
			}
		})
	}
}
