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
//	idle-{wm}        an idle advance to watermark wm, recorded before it is applied
//	idle-{wm}.snap   the state after it, once its rows are durable
//	cut              a batch end chosen by the wall clock (idle shard,
//	                 shutdown), recorded before the batch is written
//
// Watermarks are zero-padded to 20 digits so the keys sort by them.
//
// A Journal belongs to the shard's goroutine.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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

	Pipeline pipeline.Options // Shard and the outputs are set by the journal
	Batch    batch.Options    // Shard and Prefix are set by the journal
	// Publish receives each alert once the batch holding it is durable;
	// after a replay it may receive an alert again (same ID).
	Publish rules.AlertFunc
	// Retry runs each store operation and acknowledgement; nil runs each
	// once.
	Retry  RetryFunc
	Logger *slog.Logger // nil: slog.Default()
}

// Journal runs one shard's pipeline and commits its batches.
type Journal struct {
	o        Options
	proc     *pipeline.Processor
	w        *batch.Writer
	alerts   []rules.Alert // alerts of the open batch, published once it is durable
	restored bool          // Restore has run on the pipeline since it was built

	committed string // last acknowledged sequence number ("" before the first)
	last      string // last processed sequence number
	cutAt     string // a recorded cut not yet reached
	dir       string // state directory of the committed position
	// ackedStats are the counters at the last commit.
	ackedStats pipeline.Stats
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
	po.OnWindow = w.Window
	po.OnAlert = func(a *rules.Alert) {
		w.Alert(a)
		j.alerts = append(j.alerts, *a)
	}
	p, err := pipeline.NewProcessor(po)
	if err != nil {
		return err
	}
	j.proc, j.w, j.alerts, j.restored = p, w, j.alerts[:0], false
	j.ackedStats = pipeline.Stats{}
	return nil
}

// Processor is the shard's pipeline, for its counters and gauges.
func (j *Journal) Processor() *pipeline.Processor { return j.proc }

// Committed returns the last acknowledged sequence number, "" before the
// first.
func (j *Journal) Committed() string { return j.committed }

func (j *Journal) stateDir(pos string) string {
	return layout.StateDir(j.o.Prefix, j.o.App, j.o.Shard, pos)
}

func idleName(wm int64) string { return fmt.Sprintf("idle-%020d", wm) }

// Restore continues from the acknowledged position committed ("" before
// the first acknowledgement): it loads the latest state stored there and
// finishes the idle advance that was recorded but not stored, if any.
// reset reports that records had been acknowledged but their state is
// missing or was taken under other windows or rules: the shard goes on
// with empty open windows. Restore may be called again after an error.
func (j *Journal) Restore(ctx context.Context, committed string) (reset bool, err error) {
	// A pipeline that has seen a snapshot or a record is built again; the
	// one New built is used as it is.
	if j.restored || j.proc.Stats().Records > 0 {
		if err := j.build(); err != nil {
			return false, err
		}
	}
	j.restored = true
	j.committed, j.last, j.cutAt = committed, "", ""
	j.dir = j.stateDir(committed)
	j.w.Resume(committed, 0)
	keys, err := j.o.Store.List(ctx, j.dir)
	if err != nil {
		return false, err
	}
	have := map[string]bool{}
	var idles []int64 // recorded idle advances, ascending
	for _, k := range keys {
		name := strings.TrimPrefix(k, j.dir)
		have[name] = true
		if wm, ok := strings.CutPrefix(name, "idle-"); ok && !strings.HasSuffix(wm, ".snap") {
			if v, err := strconv.ParseInt(wm, 10, 64); err == nil {
				idles = append(idles, v)
			}
		}
	}
	if have["cut"] {
		b, err := j.o.Store.Get(ctx, j.dir+"cut")
		if err != nil {
			return false, err
		}
		j.cutAt = string(b)
	}
	snap, pending := "", int64(0)
	switch {
	case len(idles) > 0 && have[idleName(idles[len(idles)-1])+".snap"]:
		snap = idleName(idles[len(idles)-1]) + ".snap"
	case len(idles) > 0:
		pending = idles[len(idles)-1]
		snap = "base.snap"
		if len(idles) > 1 {
			snap = idleName(idles[len(idles)-2]) + ".snap"
		}
	case have["base.snap"]:
		snap = "base.snap"
	}
	if snap == "" || !have[snap] {
		if committed != "" {
			j.o.Logger.Warn("no state stored for the checkpoint: open windows start empty", "checkpoint", committed)
			return true, nil
		}
		return false, nil
	}
	b, err := j.o.Store.Get(ctx, j.dir+snap)
	if err != nil {
		return false, err
	}
	if err := j.load(b); err != nil {
		if errors.Is(err, windows.ErrIncompatible) || errors.Is(err, rules.ErrIncompatible) {
			// The window pane, lateness or quantiles changed between
			// deployments (other spec changes restore: see
			// windows/respec.go), or the rules, from a snapshot of a
			// tapline that keyed rule states by position: the old state
			// means nothing under the new options.
			j.o.Logger.Warn("stored state does not match the configured windows: open windows start empty", "err", err)
			if err := j.build(); err != nil {
				return false, err
			}
			j.restored = true
			j.w.Resume(committed, 0)
			return true, nil
		}
		return false, err
	}
	if pending != 0 {
		return false, j.applyIdle(pending)
	}
	return false, nil
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
	if err := j.flush("write batch", j.proc.Watermark()); err != nil {
		return err
	}
	dir := j.stateDir(seq)
	if err := j.putState("write state", dir+"base.snap"); err != nil {
		return err
	}
	if err := j.o.Retry("checkpoint", func(context.Context) error { return ack(seq) }); err != nil {
		return err
	}
	j.committed, j.dir, j.cutAt = seq, dir, ""
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
	if err := j.flush("write idle batch", wm); err != nil {
		return err
	}
	return j.putState("write state", j.dir+idleName(wm)+".snap")
}

// End closes every open window, makes everything durable and acknowledges
// ShardEnd: the end of a closed (split or merged) shard, after which its
// children start.
func (j *Journal) End(ack Ack) error {
	j.proc.Flush()
	if err := j.flush("write final batch", j.proc.Watermark()); err != nil {
		return err
	}
	return j.o.Retry("checkpoint shard end", func(context.Context) error { return ack(ShardEnd) })
}

// flush makes the open batch durable and then publishes its alerts.
func (j *Journal) flush(what string, wm int64) error {
	if err := j.o.Retry(what, func(ctx context.Context) error {
		_, err := j.w.Flush(ctx, wm)
		return err
	}); err != nil {
		return err
	}
	for i := range j.alerts {
		if j.o.Publish != nil {
			j.o.Publish(&j.alerts[i])
		}
	}
	j.alerts = j.alerts[:0]
	return nil
}

func (j *Journal) putState(what, key string) error {
	state := j.encode()
	return j.o.Retry(what, func(ctx context.Context) error {
		_, err := j.o.Store.Put(ctx, key, state)
		return err
	})
}
