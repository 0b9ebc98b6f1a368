// Package journal is one shard's delivery protocol over an object store
// (the promise in package pipeline's doc): it commits a batch by making
// its rows durable, then storing the state after it, then acknowledging
// it; it records the decisions the records do not show (a cut chosen by
// the wall clock, an idle advance) before it acts on them; and it
// restores a shard from what it finds, finishing an operation that was
// recorded but not completed. It knows nothing of Kinesis or the KCL: the
// caller passes the records and an Ack for the checkpoint.
//
// The objects of one acknowledged position live in layout.StateDir:
//
//	base.snap        the shard's state after the acknowledged record
//	base.snap.full   a base (every open pane and rule state), written
//	                 with a state when one is due (pipeline.Processor.
//	                 BaseDue): each state holds only what changed since
//	                 the state before and names the base and the states
//	                 between, which a restore reads too. Any .snap may
//	                 have one.
//	idle-{wm}        an idle advance to watermark wm, recorded before it is applied
//	idle-{wm}.snap   the state after it, once its rows are durable
//	cut              a batch end chosen by the wall clock (idle shard,
//	                 shutdown), recorded before the batch is written
//	idle-{wm}-reload-{k}       the k-th rules reload at watermark wm (its
//	                 rules and silences, rules.Config.Record), recorded
//	                 before it is applied
//	idle-{wm}-reload-{k}.snap  the state after it
//
// Watermarks are zero-padded to 20 digits and k to 4, so the keys sort in
// the order the operations were made: an idle advance and the reloads
// after it at the same watermark, then the next advance (which moves the
// watermark past them).
//
// A Journal belongs to the shard's goroutine.
package journal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// Store holds the batches (immutable, put-if-absent) and the state.
// s3sink.Store is one.
type Store interface {
	batch.Store
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
}

// Ack acknowledges that everything up to the record with sequence number
// seq is durable: the checkpoint. seq is ShardEnd after the last record
// of a closed shard.
type Ack func(seq string) error

// ShardEnd is the position End acknowledges.
const ShardEnd = "SHARD_END"

// RetryFunc runs op until it succeeds, or returns the error that ends the
// shard. what names the step, for logs and metrics.
type RetryFunc func(what string, op func(context.Context) error) error

// Options configure a Journal.
type Options struct {
	Store  Store
	Prefix string // key prefix of every object
	App    string // application name: part of the state directory
	Shard  string

	// Pipeline's Shard and outputs are set by the journal; an OnWindow or
	// OnAlert set here is called too, after the batch's.
	Pipeline pipeline.Options
	Batch    batch.Options // Shard and Prefix are set by the journal
	// Publish receives each notification (an alert not suppressed, or a
	// group of them: pipeline.Options.OnNotify) once the batch holding it
	// is durable; after a replay it may receive one again (same ID).
	Publish rules.AlertFunc
	// Retry runs each store operation and acknowledgement; nil runs each
	// once.
	Retry  RetryFunc
	Logger *slog.Logger // nil: slog.Default()
}

// Journal runs one shard's pipeline and commits its batches.
type Journal struct {
	o      Options
	proc   *pipeline.Processor
	w      *batch.Writer
	alerts []rules.Alert // notifications of the open batch, published once it is durable
	// sent are the notifications of the last batch made durable: the
	// state stored after it keeps them, and a restore from that state
	// publishes them again unless their delivery was confirmed.
	sent     []rules.Alert
	restored bool // Restore has run on the pipeline since it was built

	committed string        // last acknowledged sequence number ("" before the first)
	last      string        // last processed sequence number
	cutAt     string        // a recorded cut not yet reached
	dir       string        // state directory of the committed position
	reloadAt  op            // the last reload recorded in dir, to number the next
	offered   *rules.Config // the last rules Reload found the shard running
	// ackedStats are the counters at the last commit.
	ackedStats pipeline.Stats
	// snap and scratch are the last state's uncompressed and compressed
	// bytes, kept for their memory: a shard's state is megabytes, encoded
	// every batch, and growing a fresh buffer to that size each time was
	// the process's largest memmove (benchmarks/RESULTS.md).
	snap, scratch []byte
	// What the next state builds on (encode): the base's key, the keys
	// of the states written since it but the last, the last's key, and
	// the watermark at the base; baseSnap is the base's uncompressed
	// bytes' buffer.
	baseKey  string
	chain    []string
	lastKey  string
	baseWM   int64
	baseSnap []byte
	parts    int // objects the last Restore read the state from
}

// New builds the shard's pipeline and batch writer; it touches no store.
func New(o Options) (*Journal, error) {
	if o.Store == nil {
		return nil, errors.New("journal: a store is required")
	}
	if err := layout.ValidSegment(o.App); err != nil {
		return nil, fmt.Errorf("journal: application name: %w", err)
	}
	if o.Retry == nil {
		o.Retry = func(_ string, op func(context.Context) error) error { return op(context.Background()) }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	j := &Journal{o: o}
	if err := j.build(); err != nil {
		return nil, err
	}
	j.dir = j.stateDir("")
	return j, nil
}

func (j *Journal) build() error {
	po := j.o.Pipeline
	po.Shard = j.o.Shard
	bo := j.o.Batch
	bo.Shard, bo.Prefix = j.o.Shard, j.o.Prefix
	w, err := batch.New(j.o.Store, bo)
	if err != nil {
		return err
	}
	po.DeadLetters = w
	po.OnRecord = w.Record
	// Windows and alerts go to the batch; taps the caller set (the live
	// dashboard) see them too, and again after a replay: they are views.
	po.OnWindow, po.OnAlert = w.Window, w.Alert
	if tap := j.o.Pipeline.OnWindow; tap != nil {
		po.OnWindow = func(win *windows.Window) { w.Window(win); tap(win) }
	}
	if tap := j.o.Pipeline.OnAlert; tap != nil {
		po.OnAlert = func(a *rules.Alert) { w.Alert(a); tap(a) }
	}
	po.OnNotify = func(a *rules.Alert) { j.alerts = append(j.alerts, *a) }
	p, err := pipeline.NewProcessor(po)
	if err != nil {
		return err
	}
	j.proc, j.w, j.alerts, j.sent, j.restored, j.offered = p, w, j.alerts[:0], nil, false, nil
	j.ackedStats = pipeline.Stats{}
	j.baseKey, j.chain, j.lastKey, j.baseWM, j.parts = "", nil, "", 0, 0
	return nil
}

// Processor is the shard's pipeline, for its counters and gauges.
func (j *Journal) Processor() *pipeline.Processor { return j.proc }

// RestoredParts returns how many objects the last Restore read the
// shard's state from: the state, and the base and earlier states it
// builds on (0: none stored).
func (j *Journal) RestoredParts() int { return j.parts }

// Committed returns the last acknowledged sequence number, "" before the
// first.
func (j *Journal) Committed() string { return j.committed }

func (j *Journal) stateDir(pos string) string {
	return layout.StateDir(j.o.Prefix, j.o.App, j.o.Shard, pos)
}

func idleName(wm int64) string { return fmt.Sprintf("idle-%020d", wm) }

// op is a recorded operation of a state directory: an idle advance to wm
// (k 0) or the k-th rules reload at wm.
type op struct {
	wm int64
	k  int
}

func (o op) name() string {
	if o.k == 0 {
		return idleName(o.wm)
	}
	return fmt.Sprintf("%s-reload-%04d", idleName(o.wm), o.k)
}

// parseOp reads an operation's key name; ok is false for other objects.
func parseOp(name string) (o op, ok bool) {
	rest, ok := strings.CutPrefix(name, "idle-")
	if !ok || strings.HasSuffix(rest, ".snap") {
		return op{}, false
	}
	wm, k, reload := strings.Cut(rest, "-reload-")
	v, err := strconv.ParseInt(wm, 10, 64)
	if err != nil {
		return op{}, false
	}
	o.wm = v
	if reload {
		if o.k, err = strconv.Atoi(k); err != nil || o.k < 1 {
			return op{}, false
		}
	}
	return o, true
}

// Why a restore reset a shard's state (Restore).
const (
	ResetMissing      = "state_missing"      // no state stored for the checkpoint
	ResetIncompatible = "state_incompatible" // stored under another window pane, lateness or quantiles
)

// Restore continues from the acknowledged position committed ("" before
// the first acknowledgement): it loads the latest state stored there and
// finishes the operation (idle advance, reload) that was recorded but
// not stored, if any. reset says why the shard goes on with empty open
// windows although records had been acknowledged (ResetMissing,
// ResetIncompatible), "" when it does not. Restore may be called again
// after an error.
func (j *Journal) Restore(ctx context.Context, committed string) (reset string, err error) {
	// A pipeline that has seen a snapshot or a record is built again; the
	// one New built is used as it is.
	if j.restored || j.proc.Stats().Records > 0 {
		if err := j.build(); err != nil {
			return "", err
		}
	}
	j.restored = true
	j.committed, j.last, j.cutAt = committed, "", ""
	j.dir = j.stateDir(committed)
	j.w.Resume(committed, 0)
	keys, err := j.o.Store.List(ctx, j.dir)
	if err != nil {
		return "", err
	}
	have := map[string]bool{}
	var ops []op // recorded idle advances and reloads, in order
	for _, k := range keys {
		name := strings.TrimPrefix(k, j.dir)
		have[name] = true
		if o, ok := parseOp(name); ok {
			ops = append(ops, o)
		}
	}
	slices.SortFunc(ops, func(a, b op) int { return cmp.Or(cmp.Compare(a.wm, b.wm), cmp.Compare(a.k, b.k)) })
	j.reloadAt = op{}
	for _, o := range ops {
		if o.k > 0 {
			j.reloadAt = o
		}
	}
	if have["cut"] {
		b, err := j.o.Store.Get(ctx, j.dir+"cut")
		if err != nil {
			return "", err
		}
		j.cutAt = string(b)
	}
	// Each operation is recorded only once the state after the one before
	// it is stored, so at most the last lacks its state: restore the
	// latest state and finish that one.
	snap, pending := "base.snap", (*op)(nil)
	if n := len(ops); n > 0 {
		if have[ops[n-1].name()+".snap"] {
			snap = ops[n-1].name() + ".snap"
		} else {
			pending = &ops[n-1]
			if n > 1 {
				snap = ops[n-2].name() + ".snap"
			}
		}
	}
	if have[snap] {
		b, err := j.o.Store.Get(ctx, j.dir+snap)
		if err != nil {
			return "", err
		}
		err = j.load(ctx, j.dir+snap, b)
		// A state whose base or earlier state is gone still has its
		// batch's notifications: they go out again too.
		if (err == nil || errors.Is(err, errPartMissing)) && len(j.sent) > 0 && !have[snap+".published"] {
			j.o.Logger.Warn("publishing the last batch's notifications again: their delivery was not confirmed before the restart", "notifications", len(j.sent), "state", snap)
			j.publish(j.sent, j.dir+snap)
		}
		if err != nil {
			missing := errors.Is(err, errPartMissing)
			if !missing && !errors.Is(err, windows.ErrIncompatible) && !errors.Is(err, rules.ErrIncompatible) {
				return "", err
			}
			// The window pane, lateness or quantiles changed between
			// deployments (other spec changes restore: see
			// windows/respec.go), or the rules, from a snapshot of a
			// tapline that keyed rule states by position: the old state
			// means nothing under the new options.
			if reset = ResetIncompatible; missing {
				reset = ResetMissing
				j.o.Logger.Warn("a part of the stored state is missing: open windows start empty", "err", err)
			} else {
				j.o.Logger.Warn("stored state does not match the configured windows: open windows start empty", "err", err)
			}
			if err := j.build(); err != nil {
				return "", err
			}
			j.restored = true
			j.w.Resume(committed, 0)
		}
	} else if committed != "" {
		j.o.Logger.Warn("no state stored for the checkpoint: open windows start empty", "checkpoint", committed)
		reset = ResetMissing
	}
	switch {
	case pending == nil:
	case pending.k == 0:
		err = j.applyIdle(pending.wm)
	default:
		var b []byte
		if b, err = j.o.Store.Get(ctx, j.dir+pending.name()); err == nil {
			err = j.applyReload(*pending, b)
		}
	}
	return reset, err
}

// Process runs one record through the pipeline and commits the batch if
// it ends at this record: where the batch writer says (a function of the
// records alone) or where a recorded cut says.
func (j *Journal) Process(data []byte, seq string, arrival int64, ack Ack) error {
	if err := j.proc.Process(data, seq, arrival); err != nil {
		return err
	}
	j.last = seq
	if j.w.Due(j.proc.Watermark()) || seq == j.cutAt {
		return j.commit(seq, ack)
	}
	return nil
}

// commit makes the batch ending at seq durable, stores the state after it
// and acknowledges seq: in that order, so an acknowledged position always
// has its rows and its state in the store.
func (j *Journal) commit(seq string, ack Ack) error {
	dir := j.stateDir(seq)
	if err := j.flush("write batch", j.proc.Watermark(), dir+"base.snap"); err != nil {
		return err
	}
	if err := j.putState("write state", dir+"base.snap"); err != nil {
		return err
	}
	if err := j.o.Retry("checkpoint", func(context.Context) error { return ack(seq) }); err != nil {
		return err
	}
	j.committed, j.dir, j.cutAt, j.reloadAt = seq, dir, "", op{}
	// One line per batch: CloudWatch metric filters read the dead-letter
	// count from it (deploy/cdk's dead-letter alarm).
	st := j.proc.Stats()
	var dead uint64
	for r := range st.Rejected {
		dead += st.Rejected[r] - j.ackedStats.Rejected[r]
	}
	j.o.Logger.Info("batch committed", "checkpoint", seq, "records", st.Records-j.ackedStats.Records, "dead_letters", dead)
	j.ackedStats = st
	return nil
}

// Cut ends the open batch at the last processed record for a reason the
// records do not show (the wall clock: an idle shard, a shutdown). The
// cut is recorded first, so a replay from the acknowledged position cuts
// at the same record.
func (j *Journal) Cut(ack Ack) error {
	if j.last == "" || j.last == j.committed {
		return nil
	}
	last := j.last
	if err := j.o.Retry("record cut", func(ctx context.Context) error {
		_, err := j.o.Store.Put(ctx, j.dir+"cut", []byte(last))
		return err
	}); err != nil {
		return err
	}
	// A cut recorded by an earlier owner wins: it is the one a replay obeys.
	if err := j.o.Retry("read cut", func(ctx context.Context) error {
		b, err := j.o.Store.Get(ctx, j.dir+"cut")
		last = string(b)
		return err
	}); err != nil {
		return err
	}
	if last != j.last {
		return fmt.Errorf("journal: recorded cut %s is not the last record %s", last, j.last)
	}
	return j.commit(last, ack)
}

// Idle applies an idle advance of the watermark if one is due at now
// (pipeline.Processor.IdleWatermark): it commits what is open, records
// the advance, applies it and stores the state after it. No advance is
// made while a recorded cut is still ahead: the replay it belongs to
// comes first.
func (j *Journal) Idle(now time.Time, ack Ack) error {
	wm, ok := j.proc.IdleWatermark(now)
	if !ok || j.cutAt != "" {
		return nil
	}
	if err := j.Cut(ack); err != nil {
		return err
	}
	if err := j.o.Retry("record idle advance", func(ctx context.Context) error {
		_, err := j.o.Store.Put(ctx, j.dir+idleName(wm), nil)
		return err
	}); err != nil {
		return err
	}
	return j.applyIdle(wm)
}

func (j *Journal) applyIdle(wm int64) error {
	j.proc.AdvanceIdle(wm)
	key := j.dir + idleName(wm) + ".snap"
	if err := j.flush("write idle batch", wm, key); err != nil {
		return err
	}
	return j.putState("write state", key)
}

// Reload makes the shard run cfg from the current position, if it runs
// other rules or silences (Processor.Rules; rules.Config.Same). Like an
// idle advance it commits what is open, records the reload
// (rules.Config.Record) and applies it, then stores the state after it: a
// replay from the acknowledged position reloads at the same record, with
// the recorded rules even when the process has others by then. A reload
// recorded by an earlier owner at the same point wins. No reload is made
// while a recorded cut is still ahead: the replay it belongs to comes
// first. cfg must come from rules.Parse and fit the windows
// (pipeline.Options.CheckRules): an error is the store's, or a bug.
func (j *Journal) Reload(cfg *rules.Config, ack Ack) error {
	// The shard offers the same *Config after every batch until the
	// source changes: compare the records once per version.
	if cfg == j.offered || j.cutAt != "" {
		return nil
	}
	if cfg.Same(j.proc.Rules()) {
		j.offered = cfg
		return nil
	}
	if len(cfg.Source) == 0 {
		return errors.New("journal: reload: rules without a source cannot be recorded")
	}
	if err := j.Cut(ack); err != nil {
		return err
	}
	o := op{wm: max(j.proc.Watermark(), 0), k: 1}
	if j.reloadAt.k > 0 && j.reloadAt.wm == o.wm {
		o.k = j.reloadAt.k + 1
	}
	rec := cfg.Record()
	if err := j.o.Retry("record reload", func(ctx context.Context) error {
		_, err := j.o.Store.Put(ctx, j.dir+o.name(), rec)
		return err
	}); err != nil {
		return err
	}
	if err := j.o.Retry("read reload", func(ctx context.Context) error {
		b, err := j.o.Store.Get(ctx, j.dir+o.name())
		rec = b
		return err
	}); err != nil {
		return err
	}
	if err := j.applyReload(o, rec); err != nil {
		return err
	}
	if cfg.Same(j.proc.Rules()) { // not if an earlier owner recorded other rules here
		j.offered = cfg
	}
	return nil
}

func (j *Journal) applyReload(o op, rec []byte) error {
	j.reloadAt = o
	cfg, err := rules.ParseRecord(rec)
	if err == nil {
		err = j.proc.Reload(cfg)
	}
	if err != nil {
		return fmt.Errorf("journal: recorded reload %s: %w", o.name(), err)
	}
	j.o.Logger.Info("rules reloaded", "file", cfg.File, "rules", len(cfg.Rules), "at", o.name())
	key := j.dir + o.name() + ".snap"
	if err := j.flush("write reload batch", j.proc.Watermark(), key); err != nil {
		return err
	}
	return j.putState("write state", key)
}

// End closes every open window, makes everything durable and acknowledges
// ShardEnd: the end of a closed (split or merged) shard, after which its
// children start.
func (j *Journal) End(ack Ack) error {
	j.proc.Flush()
	if err := j.flush("write final batch", j.proc.Watermark(), ""); err != nil {
		return err
	}
	return j.o.Retry("checkpoint shard end", func(context.Context) error { return ack(ShardEnd) })
}

// flush makes the open batch durable and then publishes its
// notifications, which the state stored next at stateKey keeps ("": no
// state follows, the shard's end).
func (j *Journal) flush(what string, wm int64, stateKey string) error {
	if err := j.o.Retry(what, func(ctx context.Context) error {
		_, err := j.w.Flush(ctx, wm)
		return err
	}); err != nil {
		return err
	}
	j.sent = append(j.sent[:0], j.alerts...)
	j.alerts = j.alerts[:0]
	j.publish(j.sent, stateKey)
	return nil
}

// publish hands notes to Publish; once every one is delivered (its Done
// called), the state at stateKey is marked so that a restore from it does
// not publish them again. Until then a crash means at least once: the
// next owner publishes them again, with the same ids.
func (j *Journal) publish(notes []rules.Alert, stateKey string) {
	if j.o.Publish == nil || len(notes) == 0 {
		return
	}
	left := atomic.Int64{}
	left.Store(int64(len(notes)))
	done := func() {
		if left.Add(-1) != 0 || stateKey == "" {
			return
		}
		// On the publisher's goroutine; a failure only costs a duplicate.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := j.o.Store.Put(ctx, stateKey+".published", nil); err != nil {
			j.o.Logger.Warn("delivery of a batch's notifications not recorded: a restore from it publishes them again", "state", stateKey, "err", err)
		}
	}
	for i := range notes {
		n := notes[i] // the publisher may keep it
		n.Done = done
		j.o.Publish(&n)
	}
}

// putState stores the state at key, after the base it needs when encode
// wrote a new one.
func (j *Journal) putState(what, key string) error {
	state, base := j.encode(key)
	if base != nil {
		if err := j.o.Retry("write state base", func(ctx context.Context) error {
			_, err := j.o.Store.Put(ctx, key+fullSuffix, base)
			return err
		}); err != nil {
			return err
		}
	}
	return j.o.Retry(what, func(ctx context.Context) error {
		_, err := j.o.Store.Put(ctx, key, state)
		return err
	})
}

// Reload is a rules reload recorded in a shard's stream.
type Reload struct {
	Shard string
	After string // the acknowledged sequence number it followed ("" at the start)
	Rules *rules.Config
}

// Recorded are the decisions the records do not show that the shards of
// an application recorded (package doc): where they reloaded rules, and
// where they cut a batch for the wall clock (an idle shard, a shutdown, a
// reload, a lease handoff). An oracle that makes the same decisions at
// the same records writes the same objects.
type Recorded struct {
	Reloads []Reload
	Cuts    map[string]map[string]bool // shard -> sequence numbers a batch was cut at
}

// Decisions reads what the shards of app recorded under prefix.
func Decisions(ctx context.Context, store Store, prefix, app string) (Recorded, error) {
	rec := Recorded{Cuts: map[string]map[string]bool{}}
	root := stateRoot(prefix, app)
	keys, err := store.List(ctx, root)
	if err != nil {
		return rec, err
	}
	type found struct {
		Reload
		o op
	}
	var reloads []found
	for _, k := range keys {
		// {shard}/{position}/{name}
		parts := strings.Split(strings.TrimPrefix(k, root), "/")
		if len(parts) != 3 {
			continue
		}
		o, isOp := parseOp(parts[2])
		if parts[2] != "cut" && (!isOp || o.k == 0) {
			continue
		}
		b, err := store.Get(ctx, k)
		if err != nil {
			return rec, err
		}
		if parts[2] == "cut" {
			if rec.Cuts[parts[0]] == nil {
				rec.Cuts[parts[0]] = map[string]bool{}
			}
			rec.Cuts[parts[0]][string(b)] = true
			continue
		}
		cfg, err := rules.ParseRecord(b)
		if err != nil {
			return rec, fmt.Errorf("journal: %s: %w", k, err)
		}
		after := parts[1]
		if after == "start" {
			after = ""
		}
		reloads = append(reloads, found{Reload{parts[0], after, cfg}, o})
	}
	// Each shard's reloads in order: by position, then as made there.
	slices.SortStableFunc(reloads, func(a, b found) int {
		return cmp.Or(cmp.Compare(a.Shard, b.Shard), cmp.Compare(len(a.After), len(b.After)), cmp.Compare(a.After, b.After),
			cmp.Compare(a.o.wm, b.o.wm), cmp.Compare(a.o.k, b.o.k))
	})
	for _, r := range reloads {
		rec.Reloads = append(rec.Reloads, r.Reload)
	}
	return rec, nil
}

// stateRoot is the directory holding every shard's state directories.
func stateRoot(prefix, app string) string {
	root := layout.StateDir(prefix, app, "x", "")
	return root[:len(root)-len("x/start/")]
}

// Reloads lists every reload recorded under prefix for app, in each
// shard's order: where the shards changed rules, for audits and for
// oracles that must reload at the same records.
func Reloads(ctx context.Context, store Store, prefix, app string) ([]Reload, error) {
	rec, err := Decisions(ctx, store, prefix, app)
	return rec.Reloads, err
}
