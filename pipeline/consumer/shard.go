package consumer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// shard is the record processor of one shard lease: the KCL creates one
// per lease it takes and calls it from the shard's goroutine only.
type shard struct {
	c      *Consumer
	id     string
	log    *slog.Logger
	proc   *pipeline.Processor
	w      *batch.Writer
	alerts []rules.Alert // alerts of the open batch, published once it is durable

	committed string // last checkpointed sequence number ("" before the first)
	last      string // last processed sequence number
	cutAt     string // a recorded cut (see cut) not yet reached
	dir       string // state directory of the committed position

	lost    atomic.Bool
	lostWhy atomic.Value // error
	stats   pipeline.Stats
	// committedStats are the counters at the last commit.
	committedStats pipeline.Stats
	lastCkpt       time.Time
	behind         int64
}

func (s *shard) markLost(why error) {
	if s.lost.CompareAndSwap(false, true) {
		s.lostWhy.Store(why)
		s.c.metrics.leasesLost.Inc()
		s.log.Warn("shard lost: dropping its state without a checkpoint", "err", why)
	}
}

// Initialize builds the shard's pipeline and restores the state stored
// with its checkpoint.
func (s *shard) Initialize(in *kcl.InitializationInput) {
	s.id = in.ShardId
	s.log = s.c.log.With("shard", s.id)
	s.c.ckpt.register(s)
	s.c.metrics.leasesTaken.Inc()
	s.committed = aws.ToString(in.ExtendedSequenceNumber.SequenceNumber)
	s.lastCkpt = time.Now()
	if err := s.build(); err != nil {
		// Options were validated at start: this is a bug. Give the shard up.
		s.log.Error("cannot build the shard's pipeline", "err", err)
		s.c.ckpt.fail(s.id, err)
		s.markLost(err)
		return
	}
	err := s.retry("restore state", func(ctx context.Context) error { return s.restore(ctx) })
	if err != nil {
		s.c.ckpt.fail(s.id, err)
		s.markLost(err)
		return
	}
	s.log.Info("shard started", "checkpoint", s.committed, "live_series", s.proc.LiveSeries())
}

func (s *shard) build() error {
	po := s.c.opts.Pipeline
	po.Shard = s.id
	bo := s.c.opts.Batch
	bo.Shard, bo.Prefix = s.id, s.c.opts.Prefix
	w, err := batch.New(s.c.opts.Store, bo)
	if err != nil {
		return err
	}
	po.DeadLetters = w
	po.OnRecord = w.Record
	po.OnWindow = w.Window
	po.OnAlert = func(a *rules.Alert) {
		w.Alert(a)
		s.alerts = append(s.alerts, *a)
	}
	p, err := pipeline.NewProcessor(po)
	if err != nil {
		return err
	}
	s.proc, s.w, s.alerts, s.stats = p, w, s.alerts[:0], pipeline.Stats{}
	return nil
}

// State objects live under {prefix}/_state/{app}/{shard}/{position}/,
// where position is the checkpointed sequence number ("start" before the
// first checkpoint):
//
//	base.snap           the shard's state after the checkpointed record
//	idle-{wm}           an idle advance to watermark wm, recorded before it is applied
//	idle-{wm}.snap      the state after it, once its rows are durable
//	cut                 a batch end chosen by the wall clock (idle shard,
//	                    shutdown), recorded before the batch is written
//
// Watermarks are zero-padded to 20 digits so the keys sort by them.
func (s *shard) stateDir(pos string) string {
	if pos == "" {
		pos = "start"
	}
	return layout.Under(s.c.opts.Prefix, "_state/"+s.c.opts.App+"/"+s.id+"/"+pos+"/")
}

func idleName(wm int64) string { return fmt.Sprintf("idle-%020d", wm) }

// restore loads the latest state of the committed position and finishes
// the operation that was recorded but not completed, if any.
func (s *shard) restore(ctx context.Context) error {
	if err := s.build(); err != nil {
		return err
	}
	s.dir = s.stateDir(s.committed)
	s.w.Resume(s.committed, 0)
	keys, err := s.c.opts.Store.List(ctx, s.dir)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	var idles []int64 // recorded idle advances, ascending
	for _, k := range keys {
		name := strings.TrimPrefix(k, s.dir)
		have[name] = true
		if wm, ok := strings.CutPrefix(name, "idle-"); ok && !strings.HasSuffix(wm, ".snap") {
			if v, err := strconv.ParseInt(wm, 10, 64); err == nil {
				idles = append(idles, v)
			}
		}
	}
	if have["cut"] {
		b, err := s.c.opts.Store.Get(ctx, s.dir+"cut")
		if err != nil {
			return err
		}
		s.cutAt = string(b)
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
		if s.committed != "" {
			s.c.metrics.stateResets.Inc()
			s.log.Warn("no state stored for the checkpoint: open windows start empty", "checkpoint", s.committed)
		}
		return nil
	}
	b, err := s.c.opts.Store.Get(ctx, s.dir+snap)
	if err != nil {
		return err
	}
	if err := s.load(b); err != nil {
		if errors.Is(err, windows.ErrIncompatible) || errors.Is(err, rules.ErrIncompatible) {
			// The windows or rules changed between deployments: the old
			// state means nothing under the new ones.
			s.c.metrics.stateResets.Inc()
			s.log.Warn("stored state does not match the configured windows or rules: open windows start empty", "err", err)
			return s.build()
		}
		return err
	}
	if pending != 0 {
		return s.applyIdle(ctx, pending)
	}
	return nil
}

// encodeState is the snapshot of the shard: the batch writer's position
// and the processor's state.
func (s *shard) encodeState() []byte {
	after, next := s.w.State()
	b := binary.AppendUvarint(nil, uint64(len(after)))
	b = append(b, after...)
	b = binary.AppendVarint(b, next)
	return CompressState(s.proc.AppendSnapshot(b))
}

func (s *shard) load(stored []byte) error {
	b, err := DecompressState(stored)
	if err != nil {
		return err
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return errors.New("consumer: corrupt shard state")
	}
	after := string(b[k : k+int(n)])
	b = b[k+int(n):]
	next, k := binary.Varint(b)
	if k <= 0 {
		return errors.New("consumer: corrupt shard state")
	}
	if err := s.proc.Restore(b[k:]); err != nil {
		return err
	}
	s.w.Resume(after, next)
	return nil
}

// ProcessRecords runs the records through the pipeline, cutting batches
// where the batch writer says (a function of the records alone) and where
// a recorded cut says; each cut is made durable and then checkpointed.
func (s *shard) ProcessRecords(in *kcl.ProcessRecordsInput) {
	if s.lost.Load() {
		return
	}
	defer s.recoverPanic()
	s.behind = in.MillisBehindLatest
	for i := range in.Records {
		r := &in.Records[i]
		seq := aws.ToString(r.SequenceNumber)
		var arrival int64
		if r.ApproximateArrivalTimestamp != nil {
			arrival = r.ApproximateArrivalTimestamp.UnixMilli()
		}
		if err := s.proc.Process(r.Data, seq, arrival); err != nil {
			s.giveUp(err)
			return
		}
		s.last = seq
		if s.w.Due(s.proc.Watermark()) || seq == s.cutAt {
			if err := s.commit(in.Checkpointer, seq); err != nil {
				s.giveUp(err)
				return
			}
		}
	}
	if wm, ok := s.proc.IdleWatermark(time.Now()); ok && s.cutAt == "" {
		if err := s.idle(in.Checkpointer, wm); err != nil {
			s.giveUp(err)
			return
		}
	}
	s.report()
}

// commit makes the batch ending at seq durable, stores the state after it
// and checkpoints seq: in that order, so a checkpoint always has its rows
// and its state in the store.
func (s *shard) commit(cp kcl.IRecordProcessorCheckpointer, seq string) error {
	wm := s.proc.Watermark()
	if err := s.retry("write batch", func(ctx context.Context) error {
		_, err := s.w.Flush(ctx, wm)
		return err
	}); err != nil {
		return err
	}
	s.publish()
	dir := s.stateDir(seq)
	state := s.encodeState()
	if err := s.retry("write state", func(ctx context.Context) error {
		_, err := s.c.opts.Store.Put(ctx, dir+"base.snap", state)
		return err
	}); err != nil {
		return err
	}
	if err := s.retry("checkpoint", func(context.Context) error { return cp.Checkpoint(aws.String(seq)) }); err != nil {
		return err
	}
	s.committed, s.dir, s.cutAt = seq, dir, ""
	s.lastCkpt = time.Now()
	s.c.metrics.checkpoints.Inc()
	// One line per batch: CloudWatch metric filters read the dead-letter
	// count from it (deploy/cdk's dead-letter alarm).
	st := s.proc.Stats()
	var dead uint64
	for r := range st.Rejected {
		dead += st.Rejected[r] - s.committedStats.Rejected[r]
	}
	s.log.Info("batch committed", "checkpoint", seq, "records", st.Records-s.committedStats.Records, "dead_letters", dead)
	s.committedStats = st
	return nil
}

// cut ends the open batch at the last processed record for a reason the
// records do not show (the wall clock): the cut is recorded first, so a
// replay from the committed position cuts at the same record.
func (s *shard) cut(cp kcl.IRecordProcessorCheckpointer) error {
	if s.last == "" || s.last == s.committed {
		return nil
	}
	last := s.last
	if err := s.retry("record cut", func(ctx context.Context) error {
		_, err := s.c.opts.Store.Put(ctx, s.dir+"cut", []byte(last))
		return err
	}); err != nil {
		return err
	}
	// A cut recorded by an earlier owner wins: it is the one a replay obeys.
	if err := s.retry("read cut", func(ctx context.Context) error {
		b, err := s.c.opts.Store.Get(ctx, s.dir+"cut")
		last = string(b)
		return err
	}); err != nil {
		return err
	}
	if last != s.last {
		return fmt.Errorf("consumer: recorded cut %s is not the last record %s", last, s.last)
	}
	return s.commit(cp, last)
}

// idle applies an idle advance of the watermark: it commits what is open,
// records the advance, applies it and stores the state after it.
func (s *shard) idle(cp kcl.IRecordProcessorCheckpointer, wm int64) error {
	if err := s.cut(cp); err != nil {
		return err
	}
	if err := s.retry("record idle advance", func(ctx context.Context) error {
		_, err := s.c.opts.Store.Put(ctx, s.dir+idleName(wm), nil)
		return err
	}); err != nil {
		return err
	}
	return s.applyIdle(context.Background(), wm)
}

func (s *shard) applyIdle(_ context.Context, wm int64) error {
	s.proc.AdvanceIdle(wm)
	if err := s.retry("write idle batch", func(ctx context.Context) error {
		_, err := s.w.Flush(ctx, wm)
		return err
	}); err != nil {
		return err
	}
	s.publish()
	state := s.encodeState()
	return s.retry("write state", func(ctx context.Context) error {
		_, err := s.c.opts.Store.Put(ctx, s.dir+idleName(wm)+".snap", state)
		return err
	})
}

// publish hands the alerts of a durable batch to the alert sink.
func (s *shard) publish() {
	for i := range s.alerts {
		if s.c.opts.OnAlert != nil {
			s.c.opts.OnAlert(&s.alerts[i])
		}
	}
	s.alerts = s.alerts[:0]
}

// Shutdown ends the lease: at shard end everything is flushed and
// SHARD_END checkpointed so the children start; at a requested shutdown
// the open batch is cut and checkpointed; a zombie drops its state.
func (s *shard) Shutdown(in *kcl.ShutdownInput) {
	defer s.c.ckpt.unregister(s)
	if s.lost.Load() {
		return
	}
	defer s.recoverPanic()
	switch in.ShutdownReason {
	case kcl.TERMINATE:
		s.proc.Flush()
		wm := s.proc.Watermark()
		err := s.retry("write final batch", func(ctx context.Context) error {
			_, err := s.w.Flush(ctx, wm)
			return err
		})
		if err == nil {
			s.publish()
			err = s.retry("checkpoint shard end", func(context.Context) error { return in.Checkpointer.Checkpoint(nil) })
		}
		if err != nil {
			s.log.Error("shard end not checkpointed: a later owner replays it", "err", err)
			return
		}
		s.c.metrics.checkpoints.Inc()
		s.log.Info("shard ended: SHARD_END checkpointed")
	case kcl.REQUESTED:
		if err := s.cut(in.Checkpointer); err != nil {
			s.log.Error("final checkpoint failed: a later owner replays from the last one", "err", err)
			return
		}
		s.log.Info("shard released", "checkpoint", s.committed)
	}
	s.report()
}

// giveUp stops the shard without a checkpoint: the library releases the
// lease at the next renewal and the shard restarts from its checkpoint.
func (s *shard) giveUp(err error) {
	s.c.metrics.shardFailures.Inc()
	s.log.Error("shard failed: restarting it from its checkpoint", "err", err)
	s.c.ckpt.fail(s.id, err)
	s.markLost(err)
}

// recoverPanic turns a panic outside record decoding (which the processor
// recovers itself, dead-lettering the record) into a shard restart
// instead of a dead process: the library does not recover panics.
func (s *shard) recoverPanic() {
	if r := recover(); r != nil {
		s.giveUp(fmt.Errorf("panic: %v", r))
	}
}

// retry runs op until it succeeds, the shard is lost or the consumer's
// context ends, backing off from 100 ms to 5 s. A lost lease is final.
func (s *shard) retry(what string, op func(context.Context) error) error {
	ctx := s.c.ctx
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		opCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := op(opCtx)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrLeaseLost) || s.lost.Load() {
			return err
		}
		s.c.metrics.retries.WithLabelValues(what).Inc()
		s.log.Warn("retrying", "op", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (gave up: %v)", what, err, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// report moves the processor's counters into the metrics.
func (s *shard) report() {
	st := s.proc.Stats()
	m := s.c.metrics
	m.records.Add(float64(st.Records - s.stats.Records))
	m.bytes.Add(float64(st.Bytes - s.stats.Bytes))
	for r := range schemas.NumReasons {
		if d := st.Rejected[r] - s.stats.Rejected[r]; d > 0 {
			m.rejected.WithLabelValues(schemas.Reason(r).String()).Add(float64(d))
		}
	}
	m.windows.Add(float64(st.Windows.Windows - s.stats.Windows.Windows))
	m.clamped.Add(float64(st.Clamped - s.stats.Clamped))
	m.alerts.WithLabelValues("FIRING").Add(float64(st.Fired - s.stats.Fired))
	m.alerts.WithLabelValues("RESOLVED").Add(float64(st.Resolved - s.stats.Resolved))
	s.stats = st
	m.behind.WithLabelValues(s.id).Set(float64(s.behind))
	m.liveSeries.WithLabelValues(s.id).Set(float64(s.proc.LiveSeries()))
	m.checkpointAge.WithLabelValues(s.id).Set(time.Since(s.lastCkpt).Seconds())
}
