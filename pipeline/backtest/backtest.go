// Package backtest replays telemetry through the service's own pipeline
// (pipeline.Processor: the same decoder, windows and rules) and reports
// the alerts it would have raised, scored against labelled anomaly
// windows when there are labels. It answers "what would these rules have
// said about that data?" and measures detection (issue 15's scoring).
//
// Readings from every input are replayed as one shard receives them:
// merged by event time (ties keep input order), so one device's history
// does not make another's late. The output is a function of the inputs
// and the rules alone.
package backtest

import (
	"cmp"
	"slices"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows/rules"
)

// Reading is one telemetry record as a device sends it (JSON), with the
// device and event time it claims, for ordering and for the series'
// spans.
type Reading struct {
	Device string
	At     int64 // event time, Unix ms
	Data   []byte
}

// Span is the event time a series covers, Unix ms.
type Span struct{ First, Last int64 }

// Result is what a replay produced.
type Result struct {
	Alerts []rules.Alert   // every transition, in the order raised
	Series map[string]Span // by device id, from the readings
	Stats  pipeline.Stats  // records, rejections by reason, windows
}

type countLetters struct{}

func (countLetters) Write(*schemas.DeadLetter) error { return nil } // the processor counts them

// Run replays the readings through a Processor built from po (its
// outputs are the replay's) in event-time order (ties in input order)
// and closes every window at the end.
func Run(readings []Reading, po pipeline.Options) (*Result, error) {
	return RunProgress(readings, po, nil)
}

// progressEvery is how many records RunProgress replays between reports.
const progressEvery = 1 << 18

// RunProgress is Run reporting the records replayed and their number
// every 262,144 records and at the end, if progress is not nil.
func RunProgress(readings []Reading, po pipeline.Options, progress func(done, total int)) (*Result, error) {
	res := &Result{Series: map[string]Span{}}
	po.Shard = "backtest"
	po.DeadLetters = countLetters{}
	po.OnRecord, po.OnWindow = nil, nil
	po.OnAlert = func(a *rules.Alert) { res.Alerts = append(res.Alerts, *a) }
	p, err := pipeline.NewProcessor(po)
	if err != nil {
		return nil, err
	}
	order := timeOrder(readings)
	spans := map[string]*Span{}
	at := func(i int) *Reading {
		if order != nil {
			return &readings[order[i]]
		}
		return &readings[i]
	}
	for i := range readings {
		r := at(i)
		if i+pipeline.Lookahead < len(readings) { // a week of a large fleet: see Processor.Prefetch
			p.Prefetch(at(i + pipeline.Lookahead).Data)
		}
		if err := p.Process(r.Data, "", 0); err != nil {
			return nil, err
		}
		if progress != nil && (i+1)%progressEvery == 0 {
			progress(i+1, len(readings))
		}
		if r.Device == "" {
			continue
		}
		if s := spans[r.Device]; s != nil {
			s.First, s.Last = min(s.First, r.At), max(s.Last, r.At)
		} else {
			spans[r.Device] = &Span{r.At, r.At}
		}
	}
	for d, s := range spans {
		res.Series[d] = *s
	}
	p.Flush()
	if progress != nil {
		progress(len(readings), len(readings))
	}
	res.Stats = p.Stats()
	return res, nil
}

// timeOrder returns the positions of readings in event-time order, ties
// in input order (a stable sort, done as an unstable one on (time,
// position) keys, so the readings themselves stay where they are), or nil
// when they are in order already. Keys are packed into one integer when
// the times span less than 2^40 ms (34 years) and positions fit in 24
// bits, the usual case, which sorts several times faster.
func timeOrder(readings []Reading) []int32 {
	if slices.IsSortedFunc(readings, func(x, y Reading) int { return cmp.Compare(x.At, y.At) }) {
		return nil
	}
	order := make([]int32, len(readings))
	lo, hi := readings[0].At, readings[0].At
	for _, r := range readings {
		lo, hi = min(lo, r.At), max(hi, r.At)
	}
	if uint64(hi-lo) < 1<<40 && len(readings) < 1<<24 {
		keys := make([]uint64, len(readings))
		for i, r := range readings {
			keys[i] = uint64(r.At-lo)<<24 | uint64(i)
		}
		slices.Sort(keys)
		for i, k := range keys {
			order[i] = int32(k & (1<<24 - 1))
		}
		return order
	}
	type key struct {
		at  int64
		pos int32
	}
	keys := make([]key, len(readings))
	for i := range readings {
		keys[i] = key{readings[i].At, int32(i)}
	}
	slices.SortFunc(keys, func(x, y key) int {
		if c := cmp.Compare(x.at, y.at); c != 0 {
			return c
		}
		return cmp.Compare(x.pos, y.pos)
	})
	for i, k := range keys {
		order[i] = k.pos
	}
	return order
}
