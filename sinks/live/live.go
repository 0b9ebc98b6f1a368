// Package live publishes compact summaries of what a shard sees (window
// closes, alert transitions, command outcomes, service stats) to MQTT
// topics a browser dashboard subscribes to over WebSockets:
//
//	tapline/live/{app}/window/{device}   one closed window of one metric
//	tapline/live/{app}/alert             an alert's FIRING or RESOLVED
//	tapline/live/{app}/command           a command and its outcome
//	tapline/live/{app}/stats             the shard's rates, every second
//
// The dashboard is a view, never a dependency: a Publisher never blocks
// the shard. Summaries wait in a bounded queue that drops its oldest
// when full, window summaries are rate-limited per device, and a broker
// that refuses or is gone changes nothing for S3 or SNS; every drop is
// counted.
package live

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// Root is the topic prefix of every summary.
const Root = "tapline/live/"

// Send delivers one message; it may block (a network publish): the
// Publisher calls it from its own goroutine.
type Send func(ctx context.Context, topic string, payload []byte) error

// Options configure a Publisher.
type Options struct {
	App  string // part of every topic; validated like the service's
	Send Send
	// Queue bounds the summaries waiting to be sent. Default 4,096.
	Queue int
	// PerDevice is the least time between two window summaries of one
	// device and metric (wall clock); closer ones are dropped. Default
	// 250 ms: a dashboard that redraws four times a second.
	PerDevice time.Duration
	// MaxDevices bounds the per-device rate state; devices beyond it are
	// not rate-limited apart (they share one budget). Default 100,000.
	MaxDevices int
	Now        func() time.Time // default time.Now
}

// Counters are a Publisher's totals.
type Counters struct {
	Queued, Sent     uint64
	DroppedQueue     uint64 // oldest dropped from a full queue
	DroppedRate      uint64 // window summaries over a device's rate
	SendErrors       uint64
	DevicesTracked   int
	DevicesOverLimit uint64 // summaries of devices beyond MaxDevices
}

// series keys the rate limit: the window's interned strings, no
// allocation per window.
type series struct{ device, metric string }

type message struct {
	topic   string
	payload []byte
}

// Publisher queues summaries and sends them. Its methods are safe for
// concurrent use; the shard calls them inline.
type Publisher struct {
	o      Options
	prefix string
	mu     sync.Mutex
	queue  []message // ring buffer
	head   int
	n      int
	wake   chan struct{}
	last   map[series]int64 // last window summary (ms) per device and metric
	shared int64            // the last summary of the devices beyond MaxDevices

	queued, sent, droppedQueue, droppedRate, sendErrors, overLimit atomic.Uint64
}

// New returns a Publisher; Run sends what it queues.
func New(o Options) (*Publisher, error) {
	if o.Send == nil {
		return nil, errors.New("live: Send is required")
	}
	if !validApp(o.App) {
		return nil, errors.New("live: app must be 1-64 characters of [a-zA-Z0-9_-]")
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.PerDevice <= 0 {
		o.PerDevice = 250 * time.Millisecond
	}
	if o.MaxDevices <= 0 {
		o.MaxDevices = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Publisher{o: o, prefix: Root + o.App + "/", queue: make([]message, o.Queue), wake: make(chan struct{}, 1), last: map[series]int64{}}, nil
}

func validApp(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Topic is the topic of kind ("window/{device}", "alert", "command",
// "stats", "command-request") for app.
func Topic(app, kind string) string { return Root + app + "/" + kind }

// Window is a closed window's summary. Pt is the wall-clock time (Unix
// ms) the record that closed it was processed: the dashboard measures
// its latency from it.
type Window struct {
	Device string  `json:"d"`
	Metric string  `json:"m"`
	Spec   string  `json:"s"`
	Start  int64   `json:"t0"`
	End    int64   `json:"t1"`
	Count  int64   `json:"n"`
	Min    float64 `json:"min"`
	Mean   float64 `json:"mean"`
	Max    float64 `json:"max"`
	Pt     int64   `json:"pt"`
}

// Window queues a window close, unless the device and metric had one
// less than PerDevice ago.
func (p *Publisher) Window(w *windows.Window) {
	now := p.o.Now().UnixMilli()
	key := series{w.DeviceID, w.Metric}
	p.mu.Lock()
	last, ok := p.last[key]
	shared := !ok && len(p.last) >= p.o.MaxDevices
	if shared {
		p.overLimit.Add(1)
		last, ok = p.shared, true
	}
	if ok && now-last < p.o.PerDevice.Milliseconds() {
		p.mu.Unlock()
		p.droppedRate.Add(1)
		return
	}
	if shared {
		p.shared = now
	} else {
		p.last[key] = now
	}
	p.mu.Unlock()
	payload, _ := json.Marshal(Window{Device: w.DeviceID, Metric: w.Metric, Spec: w.Spec.Name, Start: w.Start, End: w.End,
		Count: w.Count, Min: finite(w.Min), Mean: finite(w.Mean), Max: finite(w.Max), Pt: now})
	p.push(message{p.prefix + "window/" + w.DeviceID, payload})
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Alert is an alert transition's summary.
type Alert struct {
	ID       string  `json:"id"`
	Incident string  `json:"incident"`
	Rule     string  `json:"rule"`
	Severity string  `json:"severity"`
	Device   string  `json:"d"`
	Metric   string  `json:"m,omitempty"`
	State    string  `json:"state"`
	Value    float64 `json:"value"`
	At       int64   `json:"at"`
	Message  string  `json:"message"`
	Reason   string  `json:"reason,omitempty"`
	Pt       int64   `json:"pt"`
}

// Alert queues an alert transition (never rate-limited: they are few
// and each matters).
func (p *Publisher) Alert(a *rules.Alert) {
	payload, _ := json.Marshal(Alert{ID: a.ID, Incident: a.Incident, Rule: a.Rule, Severity: a.Severity, Device: a.Device, Metric: a.Metric,
		State: string(a.State), Value: finite(a.Value), At: a.At, Message: a.Message, Reason: a.Reason, Pt: p.o.Now().UnixMilli()})
	p.push(message{p.prefix + "alert", payload})
}

// Command is a command's summary: what was asked, by whom (an alert's
// incident or "operator"), and its outcome ("sent", "applied",
// "refused: …").
type Command struct {
	ID      string `json:"id"`
	Device  string `json:"d"`
	Action  string `json:"action"`
	Cause   string `json:"cause"`
	Outcome string `json:"outcome"`
	At      int64  `json:"at"`
	Request string `json:"request,omitempty"` // the operator request it answers
}

// Command queues a command outcome.
func (p *Publisher) Command(c Command) {
	payload, _ := json.Marshal(c)
	p.push(message{p.prefix + "command", payload})
}

// Stats is the service panel's summary.
type Stats struct {
	At             int64            `json:"at"` // wall clock, ms
	RecordsPerSec  float64          `json:"rps"`
	LatePerSec     float64          `json:"late"`
	DeadPerSec     float64          `json:"dead"`
	Firing         int              `json:"firing"`
	Devices        int              `json:"devices"`
	LagMs          map[string]int64 `json:"lag"` // per shard: wall clock minus watermark
	Dropped        uint64           `json:"dropped"`
	EventTime      int64            `json:"et"` // the watermark, ms
	SimulatedSpeed float64          `json:"speed,omitempty"`
}

// Stats queues the service's stats.
func (p *Publisher) Stats(s Stats) {
	s.Dropped = p.droppedQueue.Load() + p.droppedRate.Load()
	payload, _ := json.Marshal(s)
	p.push(message{p.prefix + "stats", payload})
}

// push queues m, dropping the oldest message when the queue is full.
func (p *Publisher) push(m message) {
	p.mu.Lock()
	if p.n == len(p.queue) {
		p.head = (p.head + 1) % len(p.queue)
		p.n--
		p.droppedQueue.Add(1)
	}
	p.queue[(p.head+p.n)%len(p.queue)] = m
	p.n++
	p.mu.Unlock()
	p.queued.Add(1)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Publisher) pop() (message, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return message{}, false
	}
	m := p.queue[p.head]
	p.queue[p.head] = message{}
	p.head = (p.head + 1) % len(p.queue)
	p.n--
	return m, true
}

// Run sends queued summaries until ctx is done. A failed send is
// counted and the summary dropped: a dashboard wants the next one, not
// an old one retried.
func (p *Publisher) Run(ctx context.Context) {
	for {
		for {
			m, ok := p.pop()
			if !ok {
				break
			}
			if err := p.o.Send(ctx, m.topic, m.payload); err != nil {
				p.sendErrors.Add(1)
			} else {
				p.sent.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
	}
}

// Counters returns the totals so far.
func (p *Publisher) Counters() Counters {
	p.mu.Lock()
	tracked := len(p.last)
	p.mu.Unlock()
	return Counters{Queued: p.queued.Load(), Sent: p.sent.Load(), DroppedQueue: p.droppedQueue.Load(), DroppedRate: p.droppedRate.Load(),
		SendErrors: p.sendErrors.Load(), DevicesTracked: tracked, DevicesOverLimit: p.overLimit.Load()}
}

// Metrics renders the counters in Prometheus' text format.
func (c Counters) Metrics() string {
	line := func(name, help string, v uint64) string {
		return "# HELP tapline_live_" + name + " " + help + "\n# TYPE tapline_live_" + name + " counter\ntapline_live_" + name + " " + strconv.FormatUint(v, 10) + "\n"
	}
	return line("queued_total", "Summaries queued for the dashboard.", c.Queued) +
		line("sent_total", "Summaries sent.", c.Sent) +
		line("dropped_queue_total", "Summaries dropped from a full queue (oldest first).", c.DroppedQueue) +
		line("dropped_rate_total", "Window summaries over a device's rate.", c.DroppedRate) +
		line("send_errors_total", "Summaries the broker refused.", c.SendErrors) +
		line("devices_over_limit_total", "Window summaries of devices beyond the tracked bound.", c.DevicesOverLimit)
}
