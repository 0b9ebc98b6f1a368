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
// the last of their device and metric are dropped; a full queue drops
// its oldest; alerts are never rate-limited; every drop is counted.
func TestRateLimitAndDropOldest(t *testing.T) {
	c := &clock{time.UnixMilli(1_000_000)}
	p, err := New(Options{App: "demo", Send: func(context.Context, string, []byte) error { return nil }, Queue: 3, PerDevice: time.Second, MaxDevices: 2, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	p.Window(window("a"))
	p.Window(window("a")) // same instant: dropped
	c.t = c.t.Add(time.Second)
	p.Window(window("a")) // a second later: queued
	p.Window(window("b"))
	p.Window(window("c")) // beyond MaxDevices: the shared budget, empty so far
	p.Window(window("d")) // shares c's budget: dropped
	p.Alert(&rules.Alert{ID: "x", Device: "a", State: rules.Firing})
	got := p.Counters()
	want := Counters{Queued: 5, DroppedQueue: 2, DroppedRate: 2, DevicesTracked: 2, DevicesOverLimit: 2}
	if got != want {
		t.Fatalf("counters %+v, want %+v", got, want)
	}
	var topics []string
	for {
		m, ok := p.pop()
		if !ok {
			break
		}
		topics = append(topics, m.topic)
	}
	if fmt.Sprint(topics) != "[tapline/live/demo/window/b tapline/live/demo/window/c tapline/live/demo/alert]" {
		t.Fatalf("queue holds %v: want the newest three", topics)
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
	c := p.Counters()
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
