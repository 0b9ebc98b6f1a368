// Package live publishes compact summaries of what a shard sees (window
// closes, alert transitions, command outcomes, service stats) to MQTT
// topics a browser dashboard subscribes to over WebSockets:
//
//	tapline/live/{app}/windows           closed windows, a JSON array every 100 ms
//	tapline/live/{app}/alert             an alert's FIRING or RESOLVED
//	tapline/live/{app}/command           a command and its outcome
//	tapline/live/{app}/stats             the shard's rates, every second
//
// Window closes are many (a fleet closes thousands a second at full
// speed), so they go out in batches: one message per flush interval
// whatever the fleet's size, which is what keeps a broker's fan-out to
// many dashboards cheap (each message costs it a write per subscriber).
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

	"github.com/tapline/tapline/schemas"
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
	// device, metric and window spec (wall clock); closer ones are
	// dropped. Default
	// 250 ms: a dashboard that redraws four times a second.
	PerDevice time.Duration
	// Budget bounds the window summaries sent a second, all devices
	// together (bursts of up to a second's worth). Default 2,000: more
	// than a page redraws, and what is over it costs the shard two atomic
	// operations, not an encoding.
	Budget int
	// MaxDevices bounds the per-device rate state; devices beyond it are
	// not rate-limited apart (they share one budget). Default 100,000.
	MaxDevices int
	// Flush is how often the window summaries collected go out as one
	// message; MaxBatch sends them sooner when that many are waiting.
	// Defaults 100 ms and 500: ten messages a second to each dashboard
	// whatever the fleet, for a tenth of a second of latency.
	Flush    time.Duration
	MaxBatch int
	Now      func() time.Time // default time.Now
}

// Counters are a Publisher's totals. Queued and Sent count messages (a
// batch of window summaries is one); Windows counts window summaries.
type Counters struct {
	Queued, Sent     uint64
	Windows          uint64
	DroppedQueue     uint64 // oldest dropped from a full queue
	DroppedRate      uint64 // window summaries over a device's rate
	SendErrors       uint64
	DevicesTracked   int
	DevicesOverLimit uint64 // summaries of devices beyond MaxDevices
}

// series keys the rate limit: the window's interned strings, no
// allocation per window.
type series struct{ device, metric, spec string }

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
	batch  []byte           // window summaries waiting: `[{…},{…}` (no closing bracket)
	nbatch int
	shared int64 // the last summary of the devices beyond MaxDevices

	queued, sent, windows, droppedQueue, droppedRate, sendErrors, overLimit atomic.Uint64

	// The global budget: tokens, refilled from the clock every 64th call
	// (and never more often than each millisecond).
	calls      atomic.Uint64
	tokens     atomic.Int64
	refilledAt atomic.Int64 // ms
}

// New returns a Publisher; Run sends what it queues.
func New(o Options) (*Publisher, error) {
	if o.Send == nil {
		return nil, errors.New("live: Send is required")
	}
	if !validApp(o.App) {
		return nil, errors.New("live: app must be 1-64 characters of [a-zA-Z0-9._-]")
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
	if o.Budget <= 0 {
		o.Budget = 2000
	}
	if o.Flush <= 0 {
		o.Flush = 100 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 500
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Publisher{o: o, prefix: Root + o.App + "/", queue: make([]message, o.Queue), wake: make(chan struct{}, 1), last: map[series]int64{}}
	p.tokens.Store(int64(o.Budget))
	p.refilledAt.Store(o.Now().UnixMilli())
	return p, nil
}

// take spends one token of the global budget, refilling it from the
// clock on every 64th call: the shard pays for the clock once per 64
// windows when the budget is spent.
func (p *Publisher) take() bool {
	if p.calls.Add(1)&63 == 0 {
		now, last := p.o.Now().UnixMilli(), p.refilledAt.Load()
		if now > last && p.refilledAt.CompareAndSwap(last, now) {
			add := (now - last) * int64(p.o.Budget) / 1000
			if t := p.tokens.Load(); t < 0 {
				p.tokens.CompareAndSwap(t, 0)
			}
			if p.tokens.Add(add) > int64(p.o.Budget) {
				p.tokens.Store(int64(p.o.Budget))
			}
		}
	}
	return p.tokens.Add(-1) >= 0
}

func validApp(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Topic is the topic of kind ("windows", "alert", "command",
// "stats", "command-request") for app.
func Topic(app, kind string) string { return Root + app + "/" + kind }

// Window is a closed window's summary, as the page reads it. On the
// wire it is an array, in this order, to halve the bytes a broker copies
// to every dashboard: ["keg-0007","temp_c","1m",end,count,min,mean,max,pt].
// Pt is the wall-clock time (Unix ms) the record that closed the window
// was processed: the dashboard measures its latency from it.
type Window struct {
	Device, Metric, Spec string
	End, Count           int64
	Min, Mean, Max       float64
	Pt                   int64
}

// UnmarshalJSON reads the array form.
func (w *Window) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &[]any{&w.Device, &w.Metric, &w.Spec, &w.End, &w.Count, &w.Min, &w.Mean, &w.Max, &w.Pt})
}

// appendWindow encodes w's summary in the array form.
func appendWindow(b []byte, w *windows.Window, pt int64) []byte {
	b = append(b, '[')
	b = schemas.AppendJSONString(b, w.DeviceID)
	b = append(b, ',')
	b = schemas.AppendJSONString(b, w.Metric)
	b = append(b, ',')
	b = schemas.AppendJSONString(b, w.Spec.Name)
	b = append(b, ',')
	b = strconv.AppendInt(b, w.End, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, w.Count, 10)
	for _, v := range []float64{w.Min, w.Mean, w.Max} {
		b = append(b, ',')
		b = strconv.AppendFloat(b, finite(v), 'g', 7, 64)
	}
	b = append(b, ',')
	b = strconv.AppendInt(b, pt, 10)
	return append(b, ']')
}

// Window queues a window close, unless the global budget is spent or
// the device and metric had one less than PerDevice ago.
func (p *Publisher) Window(w *windows.Window) {
	if !p.take() {
		p.droppedRate.Add(1)
		return
	}
	now := p.o.Now().UnixMilli()
	key := series{w.DeviceID, w.Metric, w.Spec.Name}
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
	p.mu.Lock()
	if p.nbatch == 0 {
		p.batch = append(p.batch[:0], '[')
	} else {
		p.batch = append(p.batch, ',')
	}
	p.batch = appendWindow(p.batch, w, now)
	p.nbatch++
	p.windows.Add(1)
	full := p.nbatch >= p.o.MaxBatch
	p.mu.Unlock()
	if full {
		p.seal()
	}
}

// seal queues the window summaries collected as one message.
func (p *Publisher) seal() {
	p.mu.Lock()
	if p.nbatch == 0 {
		p.mu.Unlock()
		return
	}
	payload := append(p.batch, ']')
	p.batch, p.nbatch = nil, 0
	p.mu.Unlock()
	p.push(message{p.prefix + "windows", payload})
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

// Run sends queued summaries, and the window summaries every Flush,
// until ctx is done. A failed send is counted and the message dropped: a
// dashboard wants the next one, not an old one retried.
func (p *Publisher) Run(ctx context.Context) {
	tick := time.NewTicker(p.o.Flush)
	defer tick.Stop()
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
		case <-tick.C:
			p.seal()
		}
	}
}

// Counters returns the totals so far.
func (p *Publisher) Counters() Counters {
	p.mu.Lock()
	tracked := len(p.last)
	p.mu.Unlock()
	return Counters{Queued: p.queued.Load(), Sent: p.sent.Load(), Windows: p.windows.Load(), DroppedQueue: p.droppedQueue.Load(), DroppedRate: p.droppedRate.Load(),
		SendErrors: p.sendErrors.Load(), DevicesTracked: tracked, DevicesOverLimit: p.overLimit.Load()}
}
