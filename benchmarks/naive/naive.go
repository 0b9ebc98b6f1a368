// Package naive is the consumer a team writes first: encoding/json into
// a struct, one map entry per (device, metric, window) keyed by a struct,
// every hopping window updated separately, and a scan of the whole map to
// close windows. It computes the same aggregates as tapline (count, sum,
// min, max, mean, stddev, first, last) so the two can be compared on the
// same data.
package naive

import (
	"encoding/json"
	"math"
	"time"
)

// Spec is a window definition in milliseconds.
type Spec struct {
	Size, Slide int64
}

type key struct {
	device, metric string
	spec           int
	start          int64
}

type state struct {
	count           int64
	sum, min, max   float64
	mean, m2        float64
	firstTS, lastTS int64
	first, last     float64
}

type record struct {
	DeviceID string             `json:"device_id"`
	TS       int64              `json:"ts"`
	Seq      int64              `json:"seq"`
	Metrics  map[string]float64 `json:"metrics"`
}

// Window is a closed window.
type Window struct {
	Device, Metric string
	Spec           int
	Start          int64
	Count          int64
	Sum, Mean      float64
	Min, Max       float64
}

// Consumer aggregates records.
type Consumer struct {
	specs    []Spec
	lateness int64
	windows  map[key]*state
	maxTS    int64
	closed   int64
	Emit     func(Window)
	Late     int
}

// New returns a consumer.
func New(specs []Spec, lateness time.Duration) *Consumer {
	return &Consumer{specs: specs, lateness: lateness.Milliseconds(), windows: map[key]*state{}, maxTS: math.MinInt64}
}

// Process handles one JSON record.
func (c *Consumer) Process(data []byte) error {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	if r.TS > c.maxTS {
		c.maxTS = r.TS
		c.closeUpTo(r.TS - c.lateness)
	}
	for name, v := range r.Metrics {
		for i, sp := range c.specs {
			for start := r.TS - r.TS%sp.Slide; start > r.TS-sp.Size; start -= sp.Slide {
				if start+sp.Size <= c.closed {
					c.Late++
					continue
				}
				k := key{r.DeviceID, name, i, start}
				s := c.windows[k]
				if s == nil {
					s = &state{min: v, max: v, firstTS: r.TS, first: v}
					c.windows[k] = s
				}
				s.count++
				s.sum += v
				s.min = math.Min(s.min, v)
				s.max = math.Max(s.max, v)
				d := v - s.mean
				s.mean += d / float64(s.count)
				s.m2 += d * (v - s.mean)
				if r.TS < s.firstTS {
					s.firstTS, s.first = r.TS, v
				}
				if r.TS >= s.lastTS {
					s.lastTS, s.last = r.TS, v
				}
			}
		}
	}
	return nil
}

// closeUpTo emits windows ending at or before wm, minute by minute.
func (c *Consumer) closeUpTo(wm int64) {
	const step = 60_000
	boundary := wm - wm%step
	if boundary <= c.closed {
		return
	}
	c.closed = boundary
	for k, s := range c.windows {
		if k.start+c.specs[k.spec].Size <= boundary {
			if c.Emit != nil {
				c.Emit(Window{Device: k.device, Metric: k.metric, Spec: k.spec, Start: k.start, Count: s.count, Sum: s.sum, Mean: s.mean, Min: s.min, Max: s.max})
			}
			delete(c.windows, k)
		}
	}
}

// Flush closes every window.
func (c *Consumer) Flush() { c.closeUpTo(math.MaxInt64 - math.MaxInt64%60_000) }

// Open returns the number of open windows.
func (c *Consumer) Open() int { return len(c.windows) }
