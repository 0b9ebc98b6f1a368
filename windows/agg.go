package windows

import "math"

// Agg is the mergeable state of one series over a span of event time:
// enough to answer count, sum, min, max, mean, standard deviation and the
// first and last value by event time, and to combine two spans (two panes,
// or partial windows written by two shards) exactly as if their records had
// been added to one.
type Agg struct {
	Count   int64
	Sum     float64
	Min     float64
	Max     float64
	Mean    float64 // running mean (Welford)
	M2      float64 // sum of squared deviations from Mean (Welford)
	FirstTS int64   // event time of First, Unix ms
	LastTS  int64   // event time of Last, Unix ms
	First   float64
	Last    float64
}

// Add folds one value observed at event time ts into a. Ties on ts keep
// the earliest-added value as First and the latest as Last, so results
// follow the input order deterministically.
func (a *Agg) Add(ts int64, v float64) {
	if a.Count == 0 {
		*a = Agg{Count: 1, Sum: v, Min: v, Max: v, Mean: v, FirstTS: ts, LastTS: ts, First: v, Last: v}
		return
	}
	a.Count++
	a.Sum += v
	if v < a.Min {
		a.Min = v
	}
	if v > a.Max {
		a.Max = v
	}
	// Welford's update: stable where the naive sum of squares cancels.
	d := v - a.Mean
	a.Mean += d / float64(a.Count)
	a.M2 += d * (v - a.Mean)
	if ts < a.FirstTS {
		a.FirstTS, a.First = ts, v
	}
	if ts >= a.LastTS {
		a.LastTS, a.Last = ts, v
	}
}

// Merge folds b into a (Chan et al.'s parallel variance). On equal event
// times a's First and b's Last win, as if b's records came after a's.
func (a *Agg) Merge(b *Agg) {
	if b.Count == 0 {
		return
	}
	if a.Count == 0 {
		*a = *b
		return
	}
	n := a.Count + b.Count
	d := b.Mean - a.Mean
	a.M2 += b.M2 + d*d*float64(a.Count)*float64(b.Count)/float64(n)
	a.Mean += d * float64(b.Count) / float64(n)
	a.Count = n
	a.Sum += b.Sum
	// The builtins: math.Min's semantics (NaN, -0 < +0) without its call.
	a.Min = min(a.Min, b.Min)
	a.Max = max(a.Max, b.Max)
	if b.FirstTS < a.FirstTS {
		a.FirstTS, a.First = b.FirstTS, b.First
	}
	if b.LastTS >= a.LastTS {
		a.LastTS, a.Last = b.LastTS, b.Last
	}
}

// Stddev is the sample standard deviation (n-1 in the denominator, as
// Athena's stddev), 0 for fewer than two values.
func (a *Agg) Stddev() float64 {
	if a.Count < 2 {
		return 0
	}
	return math.Sqrt(a.M2 / float64(a.Count-1))
}
