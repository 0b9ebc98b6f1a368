package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func window(device string) *windows.Window {
	spec, _ := windows.ParseSpec("1m")
	return &windows.Window{Spec: &spec, Start: 0, End: 60_000, DeviceID: device, Metric: "temp_c", Agg: windows.Agg{Count: 2, Min: 1, Max: 3, Mean: 2}}
}

// TestRateLimitAndDropOldest: window summaries closer than PerDevice to
// the last of their device, metric and spec are dropped, devices beyond
// MaxDevices share one budget, the rest go out as one batch; a full
// queue drops its oldest; alerts are never rate-limited; every drop is
// counted.
func TestRateLimitAndDropOldest(t *testing.T) {
	c := &clock{time.UnixMilli(1_000_000)}
	p, err := New(Options{App: "demo", Send: func(context.Context, string, []byte) error { return nil }, Queue: 3, PerDevice: time.Second, MaxDevices: 2, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	p.Window(window("a"))
	p.Window(window("a")) // same instant: dropped
	c.t = c.t.Add(time.Second)
	p.Window(window("a")) // a second later: kept
	p.Window(window("b"))
	p.Window(window("c")) // beyond MaxDevices: the shared budget, unused so far
	p.Window(window("d")) // shares c's budget: dropped
	p.seal()              // one message: a, a, b, c
	for i := range 3 {
		p.Alert(&rules.Alert{ID: fmt.Sprint(i), Device: "a", State: rules.Firing})
	}
	got := p.Counters()
	want := Counters{Queued: 4, Windows: 4, DroppedQueue: 1, DroppedRate: 2, DevicesTracked: 2, DevicesOverLimit: 2}
	if got != want {
		t.Fatalf("counters %+v, want %+v", got, want)
	}
	var msgs []string
	for {
		m, ok := p.pop()
		if !ok {
			break
		}
		msgs = append(msgs, m.topic)
		if m.topic == "tapline/live/demo/alert" {
			var a Alert
			json.Unmarshal(m.payload, &a)
			msgs[len(msgs)-1] += "/" + a.ID
		}
	}
	if fmt.Sprint(msgs) != "[tapline/live/demo/alert/0 tapline/live/demo/alert/1 tapline/live/demo/alert/2]" {
		t.Fatalf("queue holds %v: want the newest three (the batch dropped)", msgs)
	}
}

// TestBatch: window summaries go out as one JSON array per flush, or
// sooner when MaxBatch are waiting.
func TestBatch(t *testing.T) {
	var mu sync.Mutex
	var got [][]Window
	sent := make(chan struct{}, 10)
	p, _ := New(Options{App: "demo", MaxBatch: 3, Flush: time.Hour, PerDevice: time.Nanosecond, Send: func(_ context.Context, topic string, payload []byte) error {
		var ws []Window
		if err := json.Unmarshal(payload, &ws); err != nil || topic != "tapline/live/demo/windows" {
			t.Errorf("%s: %s: %v", topic, payload, err)
		}
		mu.Lock()
		got = append(got, ws)
		mu.Unlock()
		sent <- struct{}{}
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	for _, d := range []string{"a", "b", "c", "d"} {
		p.Window(window(d))
	}
	<-sent // the full batch, without waiting an hour
	p.seal()
	<-sent
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || len(got[0]) != 3 || len(got[1]) != 1 || got[1][0].Device != "d" {
		t.Fatalf("batches %+v", got)
	}
}

// TestRunSendsAndSurvivesABrokerOutage: Run sends in order; while Send
// fails the summaries are counted and dropped, and sending resumes.
func TestRunSendsAndSurvivesABrokerOutage(t *testing.T) {
	var mu sync.Mutex
	var got []string
	down := true
	sent := make(chan struct{}, 100)
	p, _ := New(Options{App: "demo", Send: func(_ context.Context, topic string, payload []byte) error {
		defer func() { sent <- struct{}{} }()
		mu.Lock()
		defer mu.Unlock()
		if down {
			return errors.New("broker gone")
		}
		got = append(got, string(payload))
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	p.Command(Command{ID: "1", Device: "a", Action: "close_valve", Outcome: "sent"})
	<-sent
	mu.Lock()
	down = false
	mu.Unlock()
	p.Command(Command{ID: "2", Device: "a", Action: "close_valve", Outcome: "applied"})
	<-sent
	// Send returned; Run counts its result just after.
	c := p.Counters()
	for deadline := time.Now().Add(5 * time.Second); c.Sent+c.SendErrors < 2 && time.Now().Before(deadline); c = p.Counters() {
		time.Sleep(time.Millisecond)
	}
	if c.SendErrors != 1 || c.Sent != 1 || len(got) != 1 {
		t.Fatalf("counters %+v, sent %v", c, got)
	}
	var cmd Command
	if err := json.Unmarshal([]byte(got[0]), &cmd); err != nil || cmd.Outcome != "applied" {
		t.Fatalf("sent %s", got[0])
	}
}

func TestRejectsBadApp(t *testing.T) {
	for _, app := range []string{"", "a/b", "#", "x+y"} {
		if _, err := New(Options{App: app, Send: func(context.Context, string, []byte) error { return nil }}); err == nil {
			t.Errorf("app %q accepted", app)
		}
	}
}

// TestBudget: past the global budget window summaries are dropped
// before any encoding, and the budget refills with the clock.
func TestBudget(t *testing.T) {
	c := &clock{time.UnixMilli(1_000_000)}
	p, _ := New(Options{App: "demo", Send: func(context.Context, string, []byte) error { return nil }, Budget: 10, Queue: 1000, Now: c.now})
	for i := range 200 {
		p.Window(window(fmt.Sprint("d", i)))
	}
	if got := p.Counters(); got.Windows != 10 || got.DroppedRate != 190 {
		t.Fatalf("first second: %+v, want 10 queued", got)
	}
	c.t = c.t.Add(time.Second)
	for i := range 200 {
		p.Window(window(fmt.Sprint("e", i)))
	}
	if got := p.Counters(); got.Windows != 20 {
		t.Fatalf("after a second: %+v, want 10 more queued", got)
	}
}

// BenchmarkWindow is what the shard pays per window close: over the
// budget (the common case at full speed: two atomic operations) and
// within it (rate check, encoding, queue).
func BenchmarkWindow(b *testing.B) {
	for _, c := range []struct {
		name   string
		budget int
	}{{"over-budget", 1}, {"published", 1 << 30}} {
		b.Run(c.name, func(b *testing.B) {
			p, _ := New(Options{App: "bench", Budget: c.budget, PerDevice: time.Nanosecond, Queue: 1024, Send: func(context.Context, string, []byte) error { return nil }})
			ws := make([]*windows.Window, 1000)
			for i := range ws {
				ws[i] = window(fmt.Sprintf("keg-%04d", i))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.Window(ws[i%len(ws)])
				i++
			}
		})
	}
}
