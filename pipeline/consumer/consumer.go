// Package consumer runs tapline's pipeline on a Kinesis stream through the
// Kinesis Client Library (github.com/vmware/vmware-go-kcl-v2): one
// journal (package journal: the pipeline, its batch writer and the
// delivery protocol) per shard lease, checkpoints through the KCL, and
// workarounds for the library's gaps through its extension points:
//
//   - fencedCheckpointer: checkpoints are conditional on the lease owner,
//     and a lost lease is reported to the shard, which drops its state;
//   - children of a split shard start at AT_TIMESTAMP of the
//     application's first start when the configured initial position is
//     LATEST, so no record of a child is skipped;
//   - a panic outside record decoding restarts the shard from its
//     checkpoint instead of killing the process;
//   - an expired shard iterator (or any error that ends the library's
//     shard loop) releases the lease; the shard is taken again at the next
//     shard sync and resumes from its checkpoint and state;
//   - the library takes one lease per shard sync and, at each, reads
//     every lease it does not hold: syncs skip the leases the balancer's
//     last scan found held elsewhere (fence.go), so the sync can be
//     frequent (default 1 s; configurable);
//   - a released lease stays released: the library's release races a
//     renewal already under way, which took the lease back; renewals
//     here never take an unowned lease, and Stop releases what is left;
//   - leases are balanced cooperatively (balance.go), since the library's
//     stealing does not settle and skips the owner's checkpoint: workers
//     heartbeat in the lease table, agree on shares, and hand leases off
//     by cut, checkpoint and release; a stopping worker leaves first;
//   - GetRecords answers are decoded by package getrecords, not the
//     SDK's generic deserializer (a tenth of its allocations), and the
//     payloads of records that are not KPL-aggregated are hidden from the
//     library's deaggregator, which formats four bytes of every record
//     with fmt.Sprintf to look for the KPL's magic number
//     (getrecords.Payload); each shard releases its records as it
//     returns from ProcessRecords, and the next answer is decoded into
//     their buffers (getrecords.Protocol.Release): the library asks for
//     the next answer only after ProcessRecords returns, and nothing in
//     the pipeline keeps a payload past its record (in a test binary
//     released buffers are poisoned, so every consumer test checks it).
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	kcl "github.com/vmware/vmware-go-kcl-v2/clientlibrary/interfaces"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/worker"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/getrecords"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows/rules"
)

// Store holds tapline's objects: batches (immutable, put-if-absent) and
// the shards' state. s3sink.Store is one.
type Store = journal.Store

// Initial positions of a shard without a checkpoint.
const (
	TrimHorizon = "TRIM_HORIZON"
	Latest      = "LATEST"
	AtTimestamp = "AT_TIMESTAMP"
)

// Options configure a Consumer. The yaml tags are the service's
// configuration keys; the fields tagged "-" are wired by the program.
type Options struct {
	App      string `yaml:"app"` // application name: the lease table and the state directory
	Stream   string `yaml:"stream"`
	WorkerID string `yaml:"worker_id"` // default: host name and process id
	Region   string `yaml:"region"`

	// InitialPosition of a shard without checkpoint: TRIM_HORIZON
	// (default), LATEST or AT_TIMESTAMP (with InitialTimestamp).
	InitialPosition  string    `yaml:"initial_position"`
	InitialTimestamp time.Time `yaml:"initial_timestamp"`

	KCL      KCL              `yaml:"kcl"`
	Pipeline pipeline.Options `yaml:",inline"` // Shard and outputs are set per shard
	Batch    batch.Options    `yaml:"batch"`   // Shard and Prefix are set per shard

	Kinesis  *kinesis.Client  `yaml:"-"`
	DynamoDB *dynamodb.Client `yaml:"-"`
	Store    Store            `yaml:"-"`
	Prefix   string           `yaml:"-"` // key prefix of every object
	// OnAlert receives each notification (pipeline.Options.OnNotify) once
	// the batch holding it is durable;
	// after a replay it may receive an alert again (same ID).
	OnAlert rules.AlertFunc `yaml:"-"`
	// Rules, when set, returns the rules the shards should run (a hot
	// reload source's latest valid document): a shard running others
	// reloads them after its next GetRecords batch, at a recorded point
	// (journal.Reload). Pipeline.Rules are a new shard's first rules.
	Rules    func() *rules.Config  `yaml:"-"`
	Logger   *slog.Logger          `yaml:"-"`
	Registry prometheus.Registerer `yaml:"-"` // nil: metrics are not registered
}

// KCL tunes the Kinesis Client Library.
type KCL struct {
	ShardSync     time.Duration `yaml:"shard_sync"`         // how often leases are looked for (one taken per sync); default 1s
	FailoverTime  time.Duration `yaml:"failover_time"`      // lease duration; default 10s
	IdleBetween   time.Duration `yaml:"idle_between_reads"` // wait after an empty GetRecords; default 1s
	MaxRecords    int           `yaml:"max_records"`        // per GetRecords; default 10,000
	MaxLeases     int           `yaml:"max_leases"`         // per worker; default unlimited
	LeaseStealing bool          `yaml:"lease_stealing"`     // balance leases between workers
}

// EnsureDefaults sets the zero fields that have defaults, the pipeline's
// and the batch writer's included.
func (o *Options) EnsureDefaults() {
	if o.WorkerID == "" {
		host, _ := os.Hostname()
		o.WorkerID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.InitialPosition == "" {
		o.InitialPosition = TrimHorizon
	}
	k := &o.KCL
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&k.ShardSync, time.Second}, {&k.FailoverTime, 10 * time.Second}, {&k.IdleBetween, time.Second}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if k.MaxRecords == 0 {
		k.MaxRecords = 10_000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Pipeline.EnsureDefaults()
	o.Batch.EnsureDefaults()
}

// Validate reports every problem with the configuration (not the
// clients, which New checks), one per line, each naming its key.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Stream == "" {
		bad("stream: required")
	}
	if err := layout.ValidSegment(o.App); err != nil {
		bad("app: %v", err)
	}
	switch o.InitialPosition {
	case "", TrimHorizon, Latest:
	case AtTimestamp:
		if o.InitialTimestamp.IsZero() {
			bad("initial_timestamp: AT_TIMESTAMP needs an RFC 3339 time")
		}
	default:
		bad("initial_position: %q is not TRIM_HORIZON, LATEST or AT_TIMESTAMP", o.InitialPosition)
	}
	k := o.KCL
	if k.ShardSync < 0 || k.FailoverTime < 0 || k.IdleBetween < 0 || k.MaxRecords < 0 || k.MaxLeases < 0 {
		bad("kcl: durations and counts may not be negative: %+v", k)
	}
	return errors.Join(errors.Join(errs...), o.Pipeline.Validate(), o.Batch.Validate())
}

// Consumer is the KCL worker with tapline's shard processors.
type Consumer struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	ckpt    *fencedCheckpointer
	worker  *worker.Worker
	answers *getrecords.Protocol // shards release their records to it
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	started bool
	balance *balancer // nil with the library's lease stealing
}

// New validates the options; Start starts the worker.
func New(o Options) (*Consumer, error) {
	if o.Kinesis == nil || o.DynamoDB == nil || o.Store == nil {
		return nil, errors.New("consumer: Kinesis, DynamoDB and a store are required")
	}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	// The shards' options are checked once here rather than per shard.
	if _, err := journal.New(journal.Options{Store: o.Store, Prefix: o.Prefix, App: o.App, Shard: "check", Pipeline: o.Pipeline, Batch: o.Batch}); err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	c := &Consumer{opts: o, log: o.Logger.With("worker", o.WorkerID), metrics: newMetrics(o.Registry)}
	bridgeLogrus(o.Logger)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// CreateProcessor makes the Consumer the KCL's processor factory.
func (c *Consumer) CreateProcessor() kcl.IRecordProcessor { return &shard{c: c} }

// Start resolves the initial position, creates the lease table if needed
// and starts the worker; it returns once the worker runs.
func (c *Consumer) Start(ctx context.Context) error {
	o := c.opts
	pos, ts := o.InitialPosition, o.InitialTimestamp
	if pos == Latest {
		// LATEST would also apply to the children of a later split, which
		// would skip their records: read from the first start instead.
		first, err := journal.FirstStart(ctx, o.Store, o.Prefix, o.App, time.Now())
		if err != nil {
			return err
		}
		pos, ts = AtTimestamp, first
		c.log.Info("initial position LATEST resolved to the application's first start", "at_timestamp", first)
	}
	cfg := config.NewKinesisClientLibConfig(o.App, o.Stream, o.Region, o.WorkerID).
		WithInitialPositionInStream(config.InitialPositionInStream(positionCode(pos))).
		WithShardSyncIntervalMillis(int(o.KCL.ShardSync.Milliseconds())).
		WithFailoverTimeMillis(int(o.KCL.FailoverTime.Milliseconds())).
		WithLeaseRefreshPeriodMillis(int(o.KCL.FailoverTime.Milliseconds() / 2)).
		WithLeaseRefreshWaitTime(int(o.KCL.FailoverTime.Milliseconds() / 4)).
		WithIdleTimeBetweenReadsInMillis(int(o.KCL.IdleBetween.Milliseconds())).
		WithMaxRecords(o.KCL.MaxRecords).
		WithCallProcessRecordsEvenForEmptyRecordList(true). // idle shards still tick
		WithLogger(kclLogger{c.log.With("component", "kcl")}).
		WithLeaseStealing(o.KCL.LeaseStealing)
	if pos == AtTimestamp {
		cfg = cfg.WithTimestampAtInitialPositionInStream(&ts)
	}
	if o.KCL.MaxLeases > 0 {
		cfg = cfg.WithMaxLeasesForWorker(o.KCL.MaxLeases)
	}
	c.ckpt = newFencedCheckpointer(cfg, o.DynamoDB)
	if o.Registry != nil {
		o.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: "lease_reads_skipped_total",
			Help: "Shard syncs' reads of a lease another worker holds, skipped (the balancer's scan had it)."}, func() float64 { return float64(c.ckpt.Skipped.Load()) }))
	}
	// The library calls Kinesis with context.TODO(): a request that never
	// answers would hold the shard forever. Bound every call.
	// Its GetRecords answers are decoded by package getrecords, eight to
	// ten times the SDK's speed at 0.03 allocations a record instead of
	// 9 (benchmarks/RESULTS.md); anything unusual still goes to the SDK's
	// decoder.
	kc := kinesis.New(o.Kinesis.Options(), func(ko *kinesis.Options) {
		ko.APIOptions = append(ko.APIOptions, callTimeout(30*time.Second))
		getrecords.Install(ko)
		c.answers = ko.Protocol.(*getrecords.Protocol)
		c.answers.HidePayloads = true // shard.ProcessRecords reads getrecords.Payload
		c.answers.Reuse = true        // and releases its records as it returns
		// A payload read after its release reads garbage in every test of
		// a consumer: the pipeline must keep none.
		c.answers.Poison = testing.Testing()
		registerGetRecords(c.answers, o.Registry)
	})
	c.worker = worker.NewWorker(c, cfg).WithKinesis(kc).WithCheckpointer(c.ckpt)
	if err := c.worker.Start(); err != nil {
		return fmt.Errorf("consumer: start: %w", err)
	}
	if !o.KCL.LeaseStealing {
		ctx, cancel := context.WithCancel(c.ctx)
		// A heartbeat lives three syncs: a worker is missed quickly, but not
		// for one late write.
		c.balance = &balancer{c: c, interval: o.KCL.ShardSync, ttl: max(3*o.KCL.ShardSync, 2*time.Second), stop: cancel, done: make(chan struct{})}
		go func() {
			defer close(c.balance.done)
			c.balance.run(ctx)
		}()
	}
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	return nil
}

func positionCode(p string) int {
	switch p {
	case Latest:
		return int(config.LATEST)
	case AtTimestamp:
		return int(config.AT_TIMESTAMP)
	}
	return int(config.TRIM_HORIZON)
}

// Ready reports whether the worker runs and holds at least one lease.
func (c *Consumer) Ready() bool {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	return started && len(c.ckpt.owned()) > 0
}

// Owned returns the shards this worker processes now, sorted.
func (c *Consumer) Owned() []string {
	if c.ckpt == nil {
		return nil
	}
	return c.ckpt.owned()
}

// Stop stops fetching, lets each shard cut and checkpoint its open batch,
// releases the leases and returns; after the deadline in ctx it gives up
// waiting (uncommitted work is replayed by the next owner).
func (c *Consumer) Stop(ctx context.Context) error {
	done := make(chan struct{})
	if c.ckpt != nil {
		c.ckpt.stopping.Store(true) // no lease taken from here on
	}
	if c.balance != nil {
		// The others stop counting this worker, so they take its leases.
		c.balance.stop()
		<-c.balance.done
		if err := c.balance.leave(ctx); err != nil {
			c.log.Warn("heartbeat not deleted: the others wait for it to expire", "err", err)
		}
	}
	go func() {
		c.worker.Shutdown()
		if c.ckpt != nil {
			released, err := c.ckpt.releaseAll()
			if len(released) > 0 || err != nil {
				c.log.Info("leases the library left behind released", "shards", released, "err", err)
			}
		}
		close(done)
	}()
	select {
	case <-done:
		c.cancel()
		return nil
	case <-ctx.Done():
		c.cancel() // ends the shards' retries
		return fmt.Errorf("consumer: shutdown deadline passed: %w", ctx.Err())
	}
}

var _ kcl.IRecordProcessorFactory = (*Consumer)(nil)

// callTimeout bounds each API call that has no deadline of its own.
func callTimeout(d time.Duration) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("tapline-timeout",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if _, ok := ctx.Deadline(); !ok {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, d)
					defer cancel()
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	}
}
