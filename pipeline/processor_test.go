package pipeline

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
)

type letters struct {
	got []schemas.DeadLetter
	err error
}

func (l *letters) Write(d *schemas.DeadLetter) error {
	if l.err != nil {
		return l.err
	}
	c := *d
	c.Data = append([]byte(nil), d.Data...)
	l.got = append(l.got, c)
	return nil
}

func newTestProcessor(t *testing.T, dl DeadLetters, onWindow WindowFunc) *Processor {
	t.Helper()
	spec, _ := windows.ParseSpec("1m")
	p, err := NewProcessor(Options{Shard: "shardId-7", Windows: windows.Options{Specs: []windows.Spec{spec}}, DeadLetters: dl, OnWindow: onWindow})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPanicIsDeadLettered: a panic while processing one record (here in
// an output) is recovered, the record is dead-lettered with reason panic,
// and the records after it are processed.
func TestPanicIsDeadLettered(t *testing.T) {
	dl := &letters{}
	boom := true
	p := newTestProcessor(t, dl, func(w *windows.Window) {
		if boom {
			boom = false
			panic("output exploded")
		}
	})
	recs := []string{
		`{"device_id":"a","ts":1000,"v":1}`,
		`{"device_id":"a","ts":61000,"v":2}`, // closes [0,60s): the output panics
		`{"device_id":"a","ts":62000,"v":3}`,
	}
	for i, r := range recs {
		if err := p.Process([]byte(r), string(rune('1'+i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(dl.got) != 1 || dl.got[0].Reason != schemas.ReasonPanic || dl.got[0].Sequence != "2" || dl.got[0].Shard != "shardId-7" {
		t.Fatalf("dead letters: %+v", dl.got)
	}
	if !strings.Contains(dl.got[0].Error, "output exploded") || strings.ContainsAny(dl.got[0].Error, "\n") {
		t.Fatalf("panic error not one line naming the panic: %q", dl.got[0].Error)
	}
	if st := p.Stats(); st.Records != 3 || st.Accepted != 2 || st.Rejected[schemas.ReasonPanic] != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestDeadLetterFailureStopsAcknowledgement: when a dead letter cannot be
// stored, Process reports it (the shard must not checkpoint past it), and
// keeps reporting it.
func TestDeadLetterFailureStopsAcknowledgement(t *testing.T) {
	dl := &letters{err: errors.New("disk full")}
	p := newTestProcessor(t, dl, nil)
	if err := p.Process([]byte(`{"device_id":"a","ts":1000,"v":1}`), "1", 0); err != nil {
		t.Fatalf("good record: %v", err)
	}
	err := p.Process([]byte(`not json`), "2", 0)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "shardId-7") {
		t.Fatalf("bad record with a failing store: %v", err)
	}
	if err := p.Process([]byte(`{"device_id":"a","ts":2000,"v":1}`), "3", 0); err == nil {
		t.Fatal("the failure must stay reported until the shard restarts")
	}
}

func TestProcessorNeedsDeadLetters(t *testing.T) {
	spec, _ := windows.ParseSpec("1m")
	if _, err := NewProcessor(Options{Windows: windows.Options{Specs: []windows.Spec{spec}}}); err == nil {
		t.Fatal("NewProcessor without a dead-letter store succeeded")
	}
}

// TestIdleTick: with an idle timeout, Tick closes the windows a device's
// time has passed when no records arrive, without waiting out the
// lateness; the window holding its last record stays open for its
// backlog.
func TestIdleTick(t *testing.T) {
	spec, _ := windows.ParseSpec("1m")
	var closed []int64
	p, err := NewProcessor(Options{Windows: windows.Options{Specs: []windows.Spec{spec}, IdleTimeout: 30 * time.Second, AllowedLateness: 10 * time.Second},
		DeadLetters: &letters{}, OnWindow: func(w *windows.Window) { closed = append(closed, w.End) }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	p.Tick(now)
	p.Process([]byte(`{"device_id":"a","ts":10000,"v":1}`), "1", 0)
	p.Process([]byte(`{"device_id":"a","ts":65000,"v":1}`), "2", 0)
	p.Tick(now)
	p.Tick(now.Add(20 * time.Second))
	if len(closed) != 0 {
		t.Fatalf("closed before the idle timeout: %v", closed)
	}
	p.Tick(now.Add(60 * time.Second))
	p.Tick(now.Add(10 * time.Minute))
	if len(closed) != 1 || closed[0] != 60000 {
		t.Fatalf("idle advance closed %v, want [60000]", closed)
	}
}
