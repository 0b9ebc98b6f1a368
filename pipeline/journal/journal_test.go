package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
	"github.com/tapline/tapline/windows/wire"
)

// memStore is a put-if-absent map that can fail: the failAt-th operation
// (Put, Get or List; counted from 1) and every one after it return
// errCrash, as if the process had died there.
type memStore struct {
	mu     sync.Mutex
	o      map[string][]byte
	ops    int
	failAt int // 0: never
}

var errCrash = errors.New("crash")

func newMemStore() *memStore { return &memStore{o: map[string][]byte{}} }

func (m *memStore) op() error {
	m.ops++
	if m.failAt > 0 && m.ops >= m.failAt {
		return errCrash
	}
	return nil
}

func (m *memStore) Put(_ context.Context, key string, data []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return false, err
	}
	if _, ok := m.o[key]; ok {
		return false, nil
	}
	m.o[key] = bytes.Clone(data)
	return true, nil
}

func (m *memStore) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return nil, err
	}
	b, ok := m.o[key]
	if !ok {
		return nil, fmt.Errorf("get %s: not found", key)
	}
	return b, nil
}

func (m *memStore) List(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.op(); err != nil {
		return nil, err
	}
	var keys []string
	for k := range m.o {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// data returns the dataset objects (not the journal's own).
func (m *memStore) data() map[string][]byte {
	d := map[string][]byte{}
	for k, v := range m.o {
		if !layout.Internal("lake", k) {
			d[k] = v
		}
	}
	return d
}

const testRules = `
rules:
  - name: hot
    kind: threshold
    metric: temp
    window: 1m
    above: 10
    clear: 5
`

func testOptions(t *testing.T, store Store, rulesYAML string) Options {
	t.Helper()
	spec, err := windows.ParseSpec("1m")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Parse("rules.yml", []byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Store: store, Prefix: "lake", App: "app", Shard: "shardId-000000000001",
		Pipeline: pipeline.Options{
			Windows: windows.Options{Specs: []windows.Spec{spec}, IdleTimeout: time.Second},
			Rules:   rs,
		},
		Batch:  batch.Options{FlushEvery: 2 * time.Minute, MaxRows: 25},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// A script is what a shard goes through: records, idle advances made by
// the wall clock, and a shutdown at the end.
type step struct {
	seq  string // a record, or
	data []byte
	idle bool // an idle pair: Idle at T, then at T+1h with nothing between
	// reload: Reload with these rules (a hot reload the service decided):
	// made while hot fires on all three devices.
	reload string
}

// reloadedRules are what the script reloads mid-stream: hot's threshold
// changed while it fires, a rule added.
const reloadedRules = `
rules:
  - name: hot
    kind: threshold
    metric: temp
    window: 1m
    above: 11
    clear: 5
  - name: warm
    kind: threshold
    metric: temp
    window: 1m
    above: 8
`

// script is 120 records of 3 devices over 40 minutes of event time, with
// two idle stretches and hot spells that fire and resolve alerts. Four
// more devices report only in the first minutes: their rule states stop
// changing, so most states are written as changes against an older rules
// base.
func script() []step {
	var s []step
	for i := range 4 {
		ts := int64(1_764_000_000_000) + int64(i)*20_000
		s = append(s, step{seq: strconv.Itoa(900 + i), data: fmt.Appendf(nil, `{"device_id":"still-%d","ts":%d,"metrics":{"temp":4}}`, i, ts)})
	}
	for i := range 120 {
		ts := int64(1_764_000_000_000) + int64(i)*20_000
		temp := 4 + (i/15%2)*8 // 15 records hot, 15 cool
		dev := "keg-" + strconv.Itoa(i%3)
		s = append(s, step{seq: strconv.Itoa(1000 + i), data: fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"temp":%d}}`, dev, ts, temp)})
		if i == 40 || i == 90 {
			s = append(s, step{idle: true})
		}
		if i == 50 {
			s = append(s, step{reload: reloadedRules})
		}
	}
	return s
}

// run plays the script from step from on j, acknowledging into *acked.
// Idle steps before skipIdle are skipped: a shard replaying records after
// a crash is not idle, so only the recorded advances are repeated there.
// It returns the first error (a crash) and the step it happened at.
func run(j *Journal, steps []step, from, skipIdle int, acked *string) (int, error) {
	ack := func(seq string) error { *acked = seq; return nil }
	clock := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	for i := from; i < len(steps); i++ {
		st := steps[i]
		if st.reload != "" {
			cfg, err := rules.Parse("reloaded.yml", []byte(st.reload))
			if err != nil {
				return i, err
			}
			if err := j.Reload(cfg, ack); err != nil {
				return i, err
			}
			continue
		}
		if !st.idle {
			if err := j.Process(st.data, st.seq, 0, ack); err != nil {
				return i, err
			}
			continue
		}
		if i < skipIdle {
			continue
		}
		for _, now := range []time.Time{clock, clock.Add(time.Hour)} {
			if err := j.Idle(now, ack); err != nil {
				return i, err
			}
		}
	}
	return len(steps), j.Cut(ack)
}

// resumeAt is the step after the acknowledged record.
func resumeAt(steps []step, acked string) int {
	if acked == "" {
		return 0
	}
	for i, st := range steps {
		if st.seq == acked {
			return i + 1
		}
	}
	panic("acknowledged an unknown record " + acked)
}

type published struct {
	ids     map[string]bool
	reasons map[string]int  // RESOLVED by reason
	rules   map[string]bool // rules that alerted
}

func (p *published) publish(a *rules.Alert) {
	p.ids[a.ID+string(a.State)] = true
	if p.reasons != nil {
		p.reasons[a.Reason]++
		p.rules[a.Rule] = true
	}
}

// TestCrashAtEveryStep crashes the shard at each store operation of a
// whole run in turn (inside a commit: between the batch's objects, after
// the batch and before the state, after the state and before the
// acknowledgement; inside a cut and an idle advance: after recording, before
// applying, before storing the state after it), restores a new journal from
// the acknowledged position and replays from the record after it. Every
// run must end with the same objects, byte for byte, as the run that never
// crashed, every acknowledged position must have its state, and every
// alert must have been published.
func TestCrashAtEveryStep(t *testing.T) {
	steps := script()
	ref := newMemStore()
	refAlerts := &published{ids: map[string]bool{}, reasons: map[string]int{}, rules: map[string]bool{}}
	o := testOptions(t, ref, testRules)
	o.Publish = refAlerts.publish
	j, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var acked string
	if _, err := j.Restore(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := run(j, steps, 0, 0, &acked); err != nil {
		t.Fatal(err)
	}
	want := ref.data()
	var idles int
	for k := range ref.o {
		if strings.Contains(k, "/idle-") && strings.HasSuffix(k, ".snap") {
			idles++
		}
	}
	if len(want) < 10 || len(refAlerts.ids) < 4 || idles < 2 || j.Processor().Stats().Windows.IdleAdvances < 2 {
		t.Fatalf("the script is too small to test much: %d objects, %d alerts, %d idle snapshots", len(want), len(refAlerts.ids), idles)
	}
	if refAlerts.reasons[rules.ReasonRuleChanged] != 3 || !refAlerts.rules["warm"] {
		t.Fatalf("the reload did not act: RESOLVED by reason %v, rules alerting %v", refAlerts.reasons, refAlerts.rules)
	}
	var states, bases int
	for k := range ref.o {
		states += b2i(strings.HasSuffix(k, ".snap"))
		bases += b2i(strings.HasSuffix(k, ".snap"+fullSuffix))
	}
	if bases < 2 || bases > states/2 {
		t.Fatalf("%d bases for %d states: the script should write most states as changes after an older one", bases, states)
	}
	t.Logf("%d states, %d bases", states, bases)
	total := ref.ops

	for failAt := 1; failAt <= total; failAt++ {
		store := newMemStore()
		alerts := &published{ids: map[string]bool{}}
		store.failAt = failAt
		acked := ""
		crashes, crashedAt := 0, 0
		for {
			o := testOptions(t, store, testRules)
			o.Publish = alerts.publish
			j, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			err = func() error {
				if _, err := j.Restore(context.Background(), acked); err != nil {
					return err
				}
				at, err := run(j, steps, resumeAt(steps, acked), crashedAt, &acked)
				crashedAt = at
				return err
			}()
			if err == nil {
				break
			}
			if !errors.Is(err, errCrash) {
				t.Fatalf("failAt %d: %v", failAt, err)
			}
			if acked != "" {
				if _, ok := store.o[layout.StateDir("lake", "app", o.Shard, acked)+"base.snap"]; !ok {
					t.Fatalf("failAt %d: acknowledged %s without its state", failAt, acked)
				}
			}
			store.failAt = 0 // the restarted shard meets no failure
			crashes++
			// An idle advance recorded at the crash is the restore's to
			// finish; one not recorded yet happens again here (the wall
			// clock decides, and this test's clock repeats itself).
			if crashedAt < len(steps) && steps[crashedAt].idle {
				if keys, _ := store.List(context.Background(), layout.StateDir("lake", "app", o.Shard, acked)+"idle-"); len(keys) > 0 {
					crashedAt++
				}
			}
		}
		if crashes != 1 {
			t.Fatalf("failAt %d: %d crashes", failAt, crashes)
		}
		got := store.data()
		if !maps.EqualFunc(got, want, bytes.Equal) {
			for k := range want {
				if !bytes.Equal(got[k], want[k]) {
					t.Errorf("failAt %d: %s missing or different", failAt, k)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("failAt %d: unexpected %s", failAt, k)
				}
			}
			t.FailNow()
		}
		for id := range refAlerts.ids {
			if !alerts.ids[id] {
				t.Fatalf("failAt %d: alert %s never published", failAt, id)
			}
		}
	}
	t.Logf("%d crash points, each replayed to the same %d objects", total, len(want))
}

// TestCrashAtAcknowledgement: a failed checkpoint leaves the position
// unacknowledged; the replay writes nothing new.
func TestCrashAtAcknowledgement(t *testing.T) {
	steps := script()
	for failAck := 1; failAck <= 8; failAck++ {
		store := newMemStore()
		j, err := New(testOptions(t, store, testRules))
		if err != nil {
			t.Fatal(err)
		}
		acked, n := "", 0
		ack := func(seq string) error {
			if n++; n == failAck {
				return errCrash
			}
			acked = seq
			return nil
		}
		var crashed error
		for _, st := range steps {
			if st.idle {
				continue
			}
			if crashed = j.Process(st.data, st.seq, 0, ack); crashed != nil {
				break
			}
		}
		if !errors.Is(crashed, errCrash) {
			t.Fatalf("ack %d: no crash (%v)", failAck, crashed)
		}
		before := len(store.o)
		j, err = New(testOptions(t, store, testRules))
		if err != nil {
			t.Fatal(err)
		}
		if reset, err := j.Restore(context.Background(), acked); err != nil || reset != "" {
			t.Fatalf("ack %d: restore at %q: reset %q, %v", failAck, acked, reset, err)
		}
		// Replaying up to the unacknowledged commit rewrites the same
		// objects: put-if-absent writes nothing.
		var noop func(string) error = func(string) error { return nil }
		for _, st := range steps[resumeAt(steps, acked):] {
			if st.idle {
				continue
			}
			if err := j.Process(st.data, st.seq, 0, noop); err != nil {
				t.Fatal(err)
			}
			if j.Committed() != acked {
				break
			}
		}
		if len(store.o) != before {
			t.Errorf("ack %d: the replay of the unacknowledged batch added %d objects", failAck, len(store.o)-before)
		}
	}
}

// TestRestoreIncompatible: state stored under other rules is restored
// (the rules engine keeps what did not change), state stored under other
// window options resets the shard (reported) instead of failing it, and
// the shard goes on.
func TestRestoreIncompatible(t *testing.T) {
	store := newMemStore()
	j, err := New(testOptions(t, store, testRules))
	if err != nil {
		t.Fatal(err)
	}
	var acked string
	steps := script()[:60]
	if _, err := run(j, steps, 0, 0, &acked); err != nil || acked == "" {
		t.Fatalf("run: acked %q, %v", acked, err)
	}
	live := j.Processor().LiveSeries()
	other := strings.Replace(testRules, "name: hot", "name: hotter", 1)
	j, err = New(testOptions(t, store, other))
	if err != nil {
		t.Fatal(err)
	}
	reset, err := j.Restore(context.Background(), acked)
	if err != nil || reset != "" || j.Processor().LiveSeries() != live || live == 0 {
		t.Fatalf("restore under other rules: reset %q, %v, %d live series of %d", reset, err, j.Processor().LiveSeries(), live)
	}
	// Another window spec on the same pane keeps the state
	// (windows/respec.go); a finer pane cannot.
	opts := testOptions(t, store, testRules)
	two, _ := windows.ParseSpec("2m")
	opts.Pipeline.Windows.Specs = append(opts.Pipeline.Windows.Specs, two)
	j, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	reset, err = j.Restore(context.Background(), acked)
	if err != nil || reset != "" || j.Processor().LiveSeries() != live {
		t.Fatalf("restore with a window spec added: reset %q, %v, %d live series of %d", reset, err, j.Processor().LiveSeries(), live)
	}
	opts = testOptions(t, store, testRules)
	half, _ := windows.ParseSpec("30s")
	opts.Pipeline.Windows.Specs = append(opts.Pipeline.Windows.Specs, half)
	j, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	reset, err = j.Restore(context.Background(), acked)
	if err != nil || reset != ResetIncompatible {
		t.Fatalf("restore under another pane: reset %q, %v", reset, err)
	}
	if n := j.Processor().LiveSeries(); n != 0 {
		t.Fatalf("%d live series after a reset", n)
	}
	if _, err := run(j, script()[60:], 0, 0, &acked); err != nil {
		t.Fatal(err)
	}
	// A position without any state (expired, or never written) resets too.
	j, _ = New(testOptions(t, newMemStore(), testRules))
	if reset, err := j.Restore(context.Background(), "1234"); err != nil || reset != ResetMissing {
		t.Fatalf("restore without state: reset %q, %v", reset, err)
	}
	// The first start has nothing to restore and is no reset.
	j, _ = New(testOptions(t, newMemStore(), testRules))
	if reset, err := j.Restore(context.Background(), ""); err != nil || reset != "" {
		t.Fatalf("restore at the start: reset %q, %v", reset, err)
	}
}

// TestRecordedCutWins: a cut recorded by an earlier owner is where the
// replay ends its batch, and a later cut elsewhere is refused.
func TestRecordedCutWins(t *testing.T) {
	store := newMemStore()
	steps := script()
	j, _ := New(testOptions(t, store, testRules))
	var acked string
	ack := func(seq string) error { acked = seq; return nil }
	for _, st := range steps[:5] {
		if err := j.Process(st.data, st.seq, 0, ack); err != nil {
			t.Fatal(err)
		}
	}
	// The owner records a cut at the 5th record and dies before its batch.
	if _, err := store.Put(context.Background(), layout.StateDir("lake", "app", j.o.Shard, "")+"cut", []byte(steps[4].seq)); err != nil {
		t.Fatal(err)
	}
	j, _ = New(testOptions(t, store, testRules))
	if _, err := j.Restore(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	for _, st := range steps[:5] {
		if err := j.Process(st.data, st.seq, 0, ack); err != nil {
			t.Fatal(err)
		}
	}
	if acked != steps[4].seq {
		t.Fatalf("acknowledged %q, want the recorded cut %s", acked, steps[4].seq)
	}
	// An owner that cuts at another record than the recorded one stops.
	j, _ = New(testOptions(t, store, testRules))
	store.o[layout.StateDir("lake", "app", j.o.Shard, acked)+"cut"] = []byte(steps[9].seq)
	if _, err := j.Restore(context.Background(), acked); err != nil {
		t.Fatal(err)
	}
	j.cutAt = "" // as if it had not read the cut before processing
	if err := j.Process(steps[5].data, steps[5].seq, 0, ack); err != nil || j.Committed() != acked {
		t.Fatalf("process %s: committed %s, %v", steps[5].seq, j.Committed(), err)
	}
	if err := j.Cut(ack); err == nil || !strings.Contains(err.Error(), "recorded cut") {
		t.Fatalf("cut at %s over a recorded %s: %v", steps[5].seq, steps[9].seq, err)
	}
}

// TestFirstStart: put-if-absent, the first one wins, and a time kept by
// an earlier release under the expiring _state namespace carries over.
func TestFirstStart(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	t0 := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	got, err := FirstStart(ctx, store, "lake", "app", t0)
	if err != nil || !got.Equal(t0) {
		t.Fatalf("first: %v, %v", got, err)
	}
	if got, err := FirstStart(ctx, store, "lake", "app", t0.Add(time.Hour)); err != nil || !got.Equal(t0) {
		t.Fatalf("second: %v, %v", got, err)
	}
	if _, ok := store.o["lake/_app/app/first-start"]; !ok {
		t.Fatalf("stored at %v, want lake/_app/app/first-start", slices.Collect(maps.Keys(store.o)))
	}
	legacy := newMemStore()
	legacy.o["lake/_state/app/first-start"] = []byte(t0.Format(time.RFC3339Nano))
	if got, err := FirstStart(ctx, legacy, "lake", "app", t0.Add(48*time.Hour)); err != nil || !got.Equal(t0) {
		t.Fatalf("legacy: %v, %v", got, err)
	}
	if string(legacy.o["lake/_app/app/first-start"]) != t0.Format(time.RFC3339Nano) {
		t.Fatal("the legacy first start was not carried over")
	}
}

// TestNotificationsRepublishedUntilDelivered: the notifications of the
// last durable batch are kept with its state; a restore publishes them
// again (same ids) unless every one was confirmed delivered (Done), as
// when the process died between the checkpoint and the publish.
func TestNotificationsRepublishedUntilDelivered(t *testing.T) {
	for _, confirm := range []bool{false, true} {
		store := newMemStore()
		var first []string
		o := testOptions(t, store, testRules)
		o.Publish = func(a *rules.Alert) {
			first = append(first, a.ID)
			if confirm {
				a.Done()
			}
		}
		j, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Restore(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
		var acked string
		ack := func(seq string) error { acked = seq; return nil }
		for i, temp := range []int{4, 12, 12} { // fires in the last batch
			data := fmt.Appendf(nil, `{"device_id":"keg-1","ts":%d,"metrics":{"temp":%d}}`, 1_764_000_000_000+int64(i)*60_000, temp)
			if err := j.Process(data, strconv.Itoa(100+i), 0, ack); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Cut(ack); err != nil {
			t.Fatal(err)
		}
		if len(first) == 0 {
			t.Fatal("nothing fired")
		}
		var again []string
		o.Publish = func(a *rules.Alert) { again = append(again, a.ID) }
		j2, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j2.Restore(context.Background(), acked); err != nil {
			t.Fatal(err)
		}
		switch {
		case !confirm && fmt.Sprint(again) != fmt.Sprint(first):
			t.Errorf("unconfirmed: restore published %v, want %v again", again, first)
		case confirm && len(again) != 0:
			t.Errorf("confirmed: restore published %v again", again)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestStateParts: a state restores with the base and the states before
// it that it builds on; a state whose base or earlier state is gone
// resets the shard as a missing state does; a state naming an object
// that is not a part of the shard's state fails; a state stored before
// parts (journal/2) restores and the next state comes with a base.
func TestStateParts(t *testing.T) {
	store := newMemStore()
	j, err := New(testOptions(t, store, testRules))
	if err != nil {
		t.Fatal(err)
	}
	var acked string
	if _, err := run(j, script()[:70], 0, 0, &acked); err != nil || acked == "" {
		t.Fatalf("run: acked %q, %v", acked, err)
	}
	want := j.Processor().AppendSnapshot(nil)
	key := layout.StateDir("lake", "app", j.o.Shard, acked) + "base.snap"
	if len(j.chain) == 0 {
		t.Fatal("the last state comes with its own base: the test needs one built on earlier states")
	}
	var republished int
	restore := func(s *memStore) (*Journal, string, error) {
		o := testOptions(t, s, testRules)
		o.Publish = func(*rules.Alert) { republished++ }
		j, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		republished = 0
		reset, err := j.Restore(context.Background(), acked)
		return j, reset, err
	}
	r, reset, err := restore(store)
	sent := republished
	if sent == 0 {
		t.Fatal("the state holds no unconfirmed notifications: the test needs some")
	}
	if err != nil || reset != "" || !bytes.Equal(r.Processor().AppendSnapshot(nil), want) {
		t.Fatalf("restore: reset %q, %v", reset, err)
	}
	if n := r.RestoredParts(); n != len(j.chain)+2 {
		t.Fatalf("restored from %d objects, want the state, its base and %d between", n, len(j.chain))
	}

	for _, part := range []string{j.baseKey, j.chain[0]} {
		gone := newMemStore()
		maps.Copy(gone.o, store.o)
		delete(gone.o, part)
		if r, reset, err := restore(gone); err != nil || reset != ResetMissing || r.Processor().LiveSeries() != 0 || r.RestoredParts() != 0 {
			t.Fatalf("restore without %s: reset %q, %v, %d live series", part, reset, err, r.Processor().LiveSeries())
		}
		if republished != sent {
			t.Fatalf("restore without %s: %d of the state's %d unconfirmed notifications published again", part, republished, sent)
		}
	}

	// The state names an object outside the shard's state directories.
	b, _ := DecompressState(store.o[key])
	shardDir := strings.TrimSuffix(layout.StateDir("lake", "app", j.o.Shard, "x"), "x/")
	for _, forge := range []struct{ part, other string }{
		{j.baseKey, "lake/raw/x.full"},
		{j.baseKey, strings.Replace(j.baseKey, j.o.Shard, "shardId-000000000002", 1)},
		{j.baseKey, shardDir + "../../x/base.snap.full"},
		{j.baseKey, j.chain[0]}, // a state as the base
		{j.chain[0], shardDir + "1/notes.txt"},
	} {
		// The string as written: its length (keys under 128 bytes), then it.
		str := func(k string) []byte { return append([]byte{byte(len(k))}, k...) }
		forged := bytes.Replace(b, str(forge.part), str(forge.other), 1)
		s := newMemStore()
		maps.Copy(s.o, store.o)
		s.o[key] = CompressState(forged)
		if _, _, err := restore(s); err == nil || !strings.Contains(err.Error(), "not a part of this shard's state") {
			t.Fatalf("state naming %s for %s: %v", forge.other, forge.part, err)
		}
	}

	// A journal/2 state: the whole snapshot, no base.
	var w wire.Writer
	w.String(stateMagic)
	rules.AppendAlerts(&w, nil)
	after, next := r.w.State()
	w.String(after)
	w.Int(next)
	old := newMemStore()
	old.o[key] = CompressState(r.Processor().AppendSnapshot(w.B))
	o, reset, err := restore(old)
	if err != nil || reset != "" || !bytes.Equal(o.Processor().AppendSnapshot(nil), want) || o.RestoredParts() != 1 {
		t.Fatalf("restore from a journal/2 state: reset %q, %v", reset, err)
	}
	if _, err := run(o, script()[70:], 0, 0, &acked); err != nil {
		t.Fatal(err)
	}
	var bases int
	for k := range old.o {
		bases += b2i(strings.HasSuffix(k, fullSuffix))
	}
	if bases == 0 {
		t.Fatal("no base written after a journal/2 state")
	}
}
