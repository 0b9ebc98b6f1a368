package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
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

// batchOf renders readings of device id as one batched message; bad is
// the index of a reading whose temp is NaN (-1: none).
func batchOf(id string, from int64, n, bad int) []byte {
	b := fmt.Appendf(nil, `{"device_id":%q,"readings":[`, id)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		temp := strconv.Itoa(4 + i%3)
		if i == bad {
			temp = "NaN"
		}
		b = fmt.Appendf(b, `{"ts":%d,"seq":%d,"metrics":{"temp":%s,"flow":%d}}`, from+int64(i)*1000, from/1000+int64(i), temp, i)
	}
	return append(b, "]}"...)
}

// TestBatchWithABadReading: a message of ten readings, one NaN, gives 9
// accepted readings, each passed on for the raw dataset with its index,
// and one dead letter that is the bad reading as a record of its own, so
// it can be fixed and sent again alone.
func TestBatchWithABadReading(t *testing.T) {
	spec, _ := windows.ParseSpec("1m")
	dl := &letters{}
	var idx []int
	p, err := NewProcessor(Options{Windows: windows.Options{Specs: []windows.Spec{spec}}, DeadLetters: dl,
		OnRecord: func(rec *schemas.Record, _ string, _ int64) { idx = append(idx, rec.Reading) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Process(batchOf("keg-1", 1_764_000_000_000, 10, 6), "s1", 0); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Records != 1 || st.Readings != 10 || st.Accepted != 9 || st.Rejected[schemas.ReasonNonFinite] != 1 || len(dl.got) != 1 {
		t.Fatalf("stats %+v, %d dead letters", st, len(dl.got))
	}
	if !slices.Equal(idx, []int{0, 1, 2, 3, 4, 5, 7, 8, 9}) {
		t.Fatalf("readings passed on: %v", idx)
	}
	d := dl.got[0]
	if want := `{"device_id":"keg-1","ts":1764000006000,"seq":1764000006,"metrics":{"temp":NaN,"flow":6}}`; string(d.Data) != want {
		t.Fatalf("dead letter data %s, want %s", d.Data, want)
	}
	if !strings.Contains(d.Error, "readings[6]") || d.Sequence != "s1" {
		t.Fatalf("dead letter %+v", d)
	}
	// Alone, the dead letter is rejected for the same reason.
	if _, err := schemas.NewDecoder(schemas.Options{}).Decode(d.Data, 0); err == nil || !strings.HasPrefix(err.Error(), "non_finite") {
		t.Fatalf("the dead letter alone: %v", err)
	}
}

// TestBatchZeroAlloc: batched messages are decoded and windowed without
// allocating, as single records are.
func TestBatchZeroAlloc(t *testing.T) {
	spec, _ := windows.ParseSpec("1m")
	p, err := NewProcessor(Options{Windows: windows.Options{Specs: []windows.Spec{spec}}, DeadLetters: &letters{}})
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := range 120 {
		msgs = append(msgs, batchOf("keg-1", 1_764_000_000_000+int64(i)*10_000, 10, -1))
	}
	for _, m := range msgs[:10] {
		p.Process(m, "", 0)
	}
	i := 10
	if allocs := testing.AllocsPerRun(100, func() { p.Process(msgs[i], "", 0); i++ }); allocs != 0 {
		t.Fatalf("%v allocations per batched message", allocs)
	}
	if st := p.Stats(); st.Accepted != st.Readings {
		t.Fatalf("%d of %d readings accepted", st.Accepted, st.Readings)
	}
}

// TestRestoreUnderOtherWindowSpecs: a Processor restarted with a window
// spec removed and one added restores its state (and its rules' on the
// kept spec); the removed spec's open windows come with the next record,
// marked SpecIndex -1, and reach no rule.
func TestRestoreUnderOtherWindowSpecs(t *testing.T) {
	cfg, err := rules.Parse("r.yml", []byte("rules:\n  - {name: hot, kind: threshold, metric: t, window: 1m, above: 10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	specs := func(names ...string) []windows.Spec {
		var out []windows.Spec
		for _, n := range names {
			sp, _ := windows.ParseSpec(n)
			out = append(out, sp)
		}
		return out
	}
	var got, alerts []string
	mk := func(names ...string) *Processor {
		p, err := NewProcessor(Options{Windows: windows.Options{Specs: specs(names...)}, Rules: cfg, DeadLetters: &letters{},
			OnWindow: func(w *windows.Window) { got = append(got, fmt.Sprintf("%s %d %d", w.Spec.Name, w.SpecIndex, w.Count)) },
			OnAlert:  func(a *rules.Alert) { alerts = append(alerts, string(a.State)) }})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := mk("1m", "5m/1m")
	t0 := int64(1_764_000_000_000)
	for i := range 90 {
		p.Process(fmt.Appendf(nil, `{"device_id":"k","ts":%d,"t":20}`, t0+int64(i)*1000), "", 0)
	}
	q := mk("10m/1m", "1m")
	if err := q.Restore(p.AppendSnapshot(nil)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(alerts) != "[FIRING]" {
		t.Fatalf("alerts before the restart: %v", alerts)
	}
	got, alerts = nil, nil
	q.Process(fmt.Appendf(nil, `{"device_id":"k","ts":%d,"t":20}`, t0+150_000), "", 0)
	want := []string{"5m/1m -1 90", "5m/1m -1 90", "5m/1m -1 90", "5m/1m -1 90", "5m/1m -1 30", "1m 1 30"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("windows after the restore: %v, want %v", got, want)
	}
	if len(alerts) != 0 || len(q.RuleResets()) != 0 {
		t.Fatalf("the kept rule's state: alerts %v after the restore, resets %v", alerts, q.RuleResets())
	}
}

// TestRuleStateOutlivesGaps: a device silent for longer than the series
// TTL but within max_backlog keeps its rules' baselines, so the first
// spike after the gap alerts; after a silence longer than max_backlog
// its rules start afresh (warm-up again) and the same spike does not.
// Forgetting at the TTL kept sparse devices (a traffic sensor at night)
// from ever finishing a warm-up (benchmarks/DETECTION.md).
func TestRuleStateOutlivesGaps(t *testing.T) {
	cfg, err := rules.Parse("gap.yml", []byte(`rules:
  - {name: spike, kind: robust, metric: v, window: 1m, aggregate: mean, history: 10, warmup: 3, z: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gap    time.Duration
		alerts int
	}{{10 * time.Minute, 1}, {40 * time.Minute, 0}} {
		spec, _ := windows.ParseSpec("1m")
		var fired int
		p, err := NewProcessor(Options{
			Windows:     windows.Options{Specs: []windows.Spec{spec}, SeriesTTL: 2 * time.Minute, MaxBacklog: 30 * time.Minute},
			Rules:       cfg,
			DeadLetters: &letters{},
			OnAlert: func(a *rules.Alert) {
				if a.State == rules.Firing {
					fired++
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		at := int64(30_000)
		send := func(v float64) {
			if err := p.Process([]byte(fmt.Sprintf(`{"device_id":"a","ts":%d,"v":%g}`, at, v)), "", 0); err != nil {
				t.Fatal(err)
			}
			at += time.Minute.Milliseconds()
		}
		for i := range 6 {
			send(float64(10 + i%2))
		}
		at += tc.gap.Milliseconds()
		send(100) // the spike's window closes with the next record
		send(10)
		if fired != tc.alerts {
			t.Errorf("after a gap of %v: %d alerts, want %d", tc.gap, fired, tc.alerts)
		}
	}
}
