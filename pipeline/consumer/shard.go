package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/getrecords"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/schemas"
)

// shard is the record processor of one shard lease: the KCL creates one
// per lease it takes and calls it from the shard's goroutine only. It is
// glue: the delivery protocol (commits, cuts, idle advances, restore) is
// the journal's; the shard turns KCL calls into journal calls, fences
// them on the lease and moves counters into metrics.
type shard struct {
	c   *Consumer
	id  string
	log *slog.Logger
	j   *journal.Journal

	lost     atomic.Bool
	gone     bool           // handed off to another worker: its records are no longer ours
	stats    pipeline.Stats // counters at the last report
	lastCkpt time.Time
	behind   int64
	resets   map[string]uint64 // rule state resets at the last report
}

func (s *shard) markLost(why error) {
	if s.lost.CompareAndSwap(false, true) {
		s.c.metrics.leasesLost.Inc()
		s.log.Warn("shard lost: dropping its state without a checkpoint", "err", why)
	}
}

// Initialize builds the shard's journal and restores the state stored
// with its checkpoint.
func (s *shard) Initialize(in *kcl.InitializationInput) {
	s.id = in.ShardId
	s.log = s.c.log.With("shard", s.id)
	s.c.ckpt.register(s)
	s.c.metrics.leasesTaken.Inc()
	s.lastCkpt = time.Now()
	committed := aws.ToString(in.ExtendedSequenceNumber.SequenceNumber)
	j, err := journal.New(journal.Options{
		Store: s.c.opts.Store, Prefix: s.c.opts.Prefix, App: s.c.opts.App, Shard: s.id,
		Pipeline: s.c.opts.Pipeline, Batch: s.c.opts.Batch, Publish: s.c.opts.OnAlert,
		Retry: s.retry, Logger: s.log,
	})
	if err != nil {
		// Options were validated at start: this is a bug. Give the shard up.
		s.log.Error("cannot build the shard's pipeline", "err", err)
		s.c.ckpt.fail(s.id, err)
		s.markLost(err)
		return
	}
	s.j = j
	began := time.Now()
	err = s.retry("restore state", func(ctx context.Context) error {
		reset, err := j.Restore(ctx, committed)
		if reset != "" {
			s.c.metrics.stateResets.WithLabelValues(reset).Inc()
		}
		return err
	})
	s.report()
	if err != nil {
		s.c.ckpt.fail(s.id, err)
		s.markLost(err)
		return
	}
	s.log.Info("shard started", "checkpoint", committed, "live_series", j.Processor().LiveSeries(),
		"state_parts", j.RestoredParts(), "restore_took", time.Since(began).Round(time.Millisecond))
}

// ack checkpoints seq through the KCL's (fenced) checkpointer.
func (s *shard) ack(cp kcl.IRecordProcessorCheckpointer) journal.Ack {
	return func(seq string) error {
		var at *string // SHARD_END
		if seq != journal.ShardEnd {
			at = aws.String(seq)
		}
		if err := cp.Checkpoint(at); err != nil {
			return err
		}
		s.lastCkpt = time.Now()
		s.c.metrics.checkpoints.Inc()
		return nil
	}
}

// ProcessRecords runs the records through the journal, which commits
// batches where they end, then lets it make an idle advance if one is
// due.
func (s *shard) ProcessRecords(in *kcl.ProcessRecordsInput) {
	defer s.c.answers.Release(in.Records)
	if s.lost.Load() || s.gone {
		return
	}
	defer s.recoverPanic()
	s.behind = in.MillisBehindLatest
	ack := s.ack(in.Checkpointer)
	if s.c.ckpt.handingOff(s.id) {
		s.handOff(ack)
		return
	}
	for i := range in.Records {
		if i+pipeline.Lookahead < len(in.Records) {
			s.j.Processor().Prefetch(getrecords.Payload(&in.Records[i+pipeline.Lookahead]))
		}
		r := &in.Records[i]
		var arrival int64
		if r.ApproximateArrivalTimestamp != nil {
			arrival = r.ApproximateArrivalTimestamp.UnixMilli()
		}
		if err := s.j.Process(getrecords.Payload(r), aws.ToString(r.SequenceNumber), arrival, ack); err != nil {
			s.giveUp(err)
			return
		}
	}
	if s.c.opts.Rules != nil {
		if cfg := s.c.opts.Rules(); cfg != nil {
			if err := s.j.Reload(cfg, ack); err != nil {
				s.giveUp(err)
				return
			}
		}
	}
	if err := s.j.Idle(time.Now(), ack); err != nil {
		s.giveUp(err)
		return
	}
	s.report()
}

// Shutdown ends the lease: at shard end everything is flushed and
// SHARD_END checkpointed so the children start; at a requested shutdown
// the open batch is cut and checkpointed; a zombie drops its state.
func (s *shard) Shutdown(in *kcl.ShutdownInput) {
	defer s.c.ckpt.unregister(s)
	if s.lost.Load() || s.gone {
		return
	}
	defer s.recoverPanic()
	switch in.ShutdownReason {
	case kcl.TERMINATE:
		if err := s.j.End(s.ack(in.Checkpointer)); err != nil {
			s.log.Error("shard end not checkpointed: a later owner replays it", "err", err)
			return
		}
		s.log.Info("shard ended: SHARD_END checkpointed")
	case kcl.REQUESTED:
		if err := s.j.Cut(s.ack(in.Checkpointer)); err != nil {
			s.log.Error("final checkpoint failed: a later owner replays from the last one", "err", err)
			return
		}
		s.log.Info("shard released", "checkpoint", s.j.Committed())
	}
	s.report()
}

// handOff gives the lease to another worker the graceful way (balance.go):
// the open batch is cut and checkpointed, then the lease released; the
// records of this call and after are the taker's, read from that
// checkpoint.
func (s *shard) handOff(ack journal.Ack) {
	if err := s.j.Cut(ack); err != nil {
		s.giveUp(err)
		return
	}
	s.gone = true
	if err := s.c.ckpt.handedOffNow(s.id); err != nil {
		s.log.Warn("handed-off lease not released: it expires instead", "err", err)
	}
	s.c.metrics.handoffs.Inc()
	s.report()
	s.log.Info("lease handed off", "checkpoint", s.j.Committed())
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
	p := s.j.Processor()
	st := p.Stats()
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
	m.duplicates.Add(float64(st.Windows.Duplicate - s.stats.Windows.Duplicate))
	m.alerts.WithLabelValues("FIRING").Add(float64(st.Fired - s.stats.Fired))
	m.alerts.WithLabelValues("RESOLVED").Add(float64(st.Resolved - s.stats.Resolved))
	s.stats = st
	if s.resets == nil {
		s.resets = map[string]uint64{}
	}
	for reason, n := range p.RuleResets() { // restores and reloads
		if d := n - s.resets[reason]; d > 0 {
			m.ruleResets.WithLabelValues(reason).Add(float64(d))
			s.resets[reason] = n
		}
	}
	m.behind.WithLabelValues(s.id).Set(float64(s.behind))
	m.liveSeries.WithLabelValues(s.id).Set(float64(p.LiveSeries()))
	m.checkpointAge.WithLabelValues(s.id).Set(time.Since(s.lastCkpt).Seconds())
}
