package benchmarks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/backtest"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// A signal without anomalies: the value at reading i (5 minutes apart).
type cleanSignal struct {
	name, shape string
	value       func(i int, r *rand.Rand, state *float64) float64
}

const perDay = 288 // 5-minute readings

// cleanSignals are series with nothing to find, two weeks each: the
// shapes of NAB's artificialNoAnomaly files (which the labelled subset
// here does not include), and shapes fleets have that NAB lacks (a
// working week, a random walk, counts, rare heavy-tailed bursts). Every
// alert on them is a false alarm, so they measure what tuning on NAB's
// labels cannot: how often the rules cry wolf on a signal they never saw.
var cleanSignals = []cleanSignal{
	{"daily-no-noise", "a daily sine", func(i int, _ *rand.Rand, _ *float64) float64 {
		return 50 + 40*math.Sin(2*math.Pi*float64(i)/perDay)
	}},
	{"daily-small-noise", "a daily sine, noise of 5% of its swing", func(i int, r *rand.Rand, _ *float64) float64 {
		return 50 + 40*math.Sin(2*math.Pi*float64(i)/perDay) + 2*r.NormFloat64()
	}},
	{"daily-square-wave", "12 hours at 80, 12 at 20", func(i int, _ *rand.Rand, _ *float64) float64 {
		if i%perDay < perDay/2 {
			return 80
		}
		return 20
	}},
	{"flatline", "a constant", func(int, *rand.Rand, *float64) float64 { return 42 }},
	{"noisy", "Gaussian noise around a constant", func(_ int, r *rand.Rand, _ *float64) float64 { return 50 + 10*r.NormFloat64() }},
	{"working-week", "a daily sine, 30 higher on weekdays, noise", func(i int, r *rand.Rand, _ *float64) float64 {
		v := 50 + 30*math.Sin(2*math.Pi*float64(i)/perDay) + 3*r.NormFloat64()
		if (i/perDay)%7 < 5 {
			v += 30
		}
		return v
	}},
	{"random-walk", "steps of N(0, 0.5)", func(_ int, r *rand.Rand, s *float64) float64 {
		*s += 0.5 * r.NormFloat64()
		return 100 + *s
	}},
	{"counts", "Binomial(50, 0.1) events a reading", func(_ int, r *rand.Rand, _ *float64) float64 {
		n := 0
		for range 50 {
			if r.Float64() < 0.1 {
				n++
			}
		}
		return float64(n)
	}},
	{"bursts", "uniform noise, 5% of readings a Pareto(2.5) burst", func(_ int, r *rand.Rand, _ *float64) float64 {
		if r.Float64() < 0.05 {
			return 5 + math.Pow(1-r.Float64(), -1/2.5)
		}
		return 5 + r.Float64()
	}},
}

// cleanSeeds and cleanDays: each signal is replayed as cleanSeeds series
// of cleanDays days, each with its own random draws. One two-week draw
// said the set raised no alarm on the bursts and the random walk; eight
// four-week draws say otherwise (DETECTION.md).
const cleanSeeds, cleanDays = 8, 28

// cleanDevice names the series of a signal's draw.
func cleanDevice(signal string, seed int) string { return fmt.Sprintf("clean-%s-%d", signal, seed) }

// cleanReadings are the signals' readings, from 2014-04-01 (a Tuesday).
func cleanReadings() []backtest.Reading {
	start := time.Date(2014, 4, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var out []backtest.Reading
	for k, s := range cleanSignals {
		for seed := range cleanSeeds {
			r := rand.New(rand.NewPCG(7, uint64(k*cleanSeeds+seed)))
			var state float64
			dev := cleanDevice(s.name, seed)
			for i := range cleanDays * perDay {
				out = append(out, valueReading(dev, start+int64(i)*300_000, s.value(i, r, &state)))
			}
		}
	}
	return out
}

// ruleSet is a rule set scored beside the default one.
type ruleSet struct {
	name string
	cfg  *rules.Config
}

// comparedSets are the default set, the ones given, and the two z-score
// baselines: the columns of the tables of unlabelled and injected signals.
func comparedSets(t *testing.T, more ...ruleSet) []ruleSet {
	sets := append([]ruleSet{{"default set", rules.Default()}, {"three rules", threeRules(t)}}, more...)
	for _, set := range issueBaselines {
		sets = append(sets, ruleSet{"z-score, " + set.name, set.config(t)})
	}
	return sets
}

// replaySets replays readings through each set and scores them against
// labels.
func replaySets(t *testing.T, readings []backtest.Reading, labels backtest.Labels, sets []ruleSet) []backtest.Score {
	scores := make([]backtest.Score, len(sets))
	for i, set := range sets {
		specs, err := set.cfg.Specs()
		if err != nil {
			t.Fatal(err)
		}
		res, err := backtest.Run(readings, pipeline.Options{Windows: windows.Options{Specs: specs}, Rules: set.cfg})
		if err != nil {
			t.Fatal(err)
		}
		scores[i] = backtest.ScoreAlerts(res, labels)
	}
	return scores
}

// writeHeader writes a table's header: first, then a column a set.
func writeHeader(b *strings.Builder, first string, sets []ruleSet) {
	b.WriteString("| " + first + " |")
	for _, set := range sets {
		b.WriteString(" " + set.name + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(sets)) + "\n")
}

// valueReading is a device's record of one metric, value, at event
// time at (Unix ms), as devices send it.
func valueReading(device string, at int64, v float64) backtest.Reading {
	data := fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"value":`, device, at)
	data = strconv.AppendFloat(data, v, 'f', 6, 64)
	return backtest.Reading{Device: device, At: at, Data: append(data, "}}"...)}
}

// cleanTable replays the clean signals through the default set and the
// baselines and counts their alarms per signal: in all its series, and
// per series-week.
func cleanTable(t *testing.T) string {
	sets := comparedSets(t, ruleSet{"season 168h", weeklyCycle()})
	scores := replaySets(t, cleanReadings(), nil, sets)
	var b strings.Builder
	writeHeader(&b, fmt.Sprintf("signal (%d series of %d weeks)", cleanSeeds, cleanDays/7), sets)
	for _, s := range cleanSignals {
		fmt.Fprintf(&b, "| `%s`: %s |", s.name, s.shape)
		for i := range sets {
			fa, weeks := 0, 0.0
			for seed := range cleanSeeds {
				ss := seriesOf(t, scores[i], cleanDevice(s.name, seed))
				fa, weeks = fa+ss.FalseAlarms, weeks+ss.Weeks
			}
			fmt.Fprintf(&b, " %d (%.2f) |", fa, float64(fa)/weeks)
		}
		b.WriteString("\n")
	}
	b.WriteString("| **false alarms per series-week** |")
	for i := range sets {
		fmt.Fprintf(&b, " **%.2f** |", scores[i].PerWeek())
	}
	b.WriteString("\n")
	return b.String()
}
