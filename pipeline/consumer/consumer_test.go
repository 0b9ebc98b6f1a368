package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// local is the stack the tests of this package share; nil when it could
// not start (stackErr says why).
var (
	local    *stack.Stack
	stackErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tapline-consumer-*")
	if err != nil {
		panic(err)
	}
	local, stackErr = stack.Start(stack.Options{Dir: dir})
	code := m.Run()
	if local != nil {
		local.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's stream, table, bucket and clients.
type env struct {
	t       *testing.T
	name    string
	k       *kinesis.Client
	db      *dynamodb.Client
	store   *s3sink.Store
	po      pipeline.Options
	bo      batch.Options
	prefix  string
	alerts  atomic.Int64
	records []stack.Record
	logs    testWriter
}

var envs atomic.Int64

func newEnv(t *testing.T, shards int) *env {
	t.Helper()
	if local == nil {
		server.Require(t, stackErr)
	}
	ctx := context.Background()
	e := &env{t: t, name: fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e6, envs.Add(1)), prefix: testPrefix, logs: newTestWriter(t)}
	e.k, e.db = local.KinesisClient(), local.DynamoDBClient()
	var err error
	if e.store, err = local.S3Store(ctx, "b-"+e.name); err != nil {
		t.Fatal(err)
	}
	if err := stack.CreateStream(ctx, e.k, e.name, shards); err != nil {
		t.Fatal(err)
	}
	specs := []windows.Spec{mustSpec("1m"), mustSpec("5m/1m")}
	cfg, err := rules.Parse("rules.yml", []byte(consumertest.Rules))
	if err != nil {
		t.Fatal(err)
	}
	e.po = pipeline.Options{Windows: windows.Options{Specs: specs, AllowedLateness: 30 * time.Second}, Rules: cfg}
	e.bo = batch.Options{MaxRows: 1500, FlushEvery: 2 * time.Minute, Parquet: parquet.Options{Compression: parquet.Snappy}}
	return e
}

func mustSpec(s string) windows.Spec {
	sp, err := windows.ParseSpec(s)
	if err != nil {
		panic(err)
	}
	return sp
}

// options are the consumer options of the env, tuned for tests.
func (e *env) options(worker string) Options {
	return Options{
		App: e.name, Stream: e.name, WorkerID: worker, Region: stack.Region,
		Kinesis: e.k, DynamoDB: e.db, Store: e.store, Prefix: e.prefix,
		Pipeline: e.po, Batch: e.bo,
		OnAlert: func(*rules.Alert) { e.alerts.Add(1) },
		KCL:     KCL{ShardSync: 300 * time.Millisecond, FailoverTime: 3 * time.Second, IdleBetween: 100 * time.Millisecond},
		Logger:  slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: testLogLevel})),
	}
}

// testWriter logs to the test while it runs; a worker still stopping
// after the test ended writes nowhere (testing panics on a late Log).
type testWriter struct {
	t    *testing.T
	done *atomic.Bool
}

func newTestWriter(t *testing.T) testWriter {
	w := testWriter{t: t, done: new(atomic.Bool)}
	t.Cleanup(func() { w.done.Store(true) })
	return w
}

func (w testWriter) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}

// put sends rounds from..to-1 of consumertest.Telemetry.
func (e *env) put(devices, from, to int) {
	e.t.Helper()
	e.send(consumertest.Telemetry(devices, from, to))
}

func (e *env) send(recs []stack.Record) {
	e.t.Helper()
	if err := stack.Put(context.Background(), e.k, e.name, recs); err != nil {
		e.t.Fatal(err)
	}
	e.records = append(e.records, recs...)
}

// heartbeat closes every window: see consumertest.Heartbeat.
func (e *env) heartbeat(devices int) {
	e.t.Helper()
	e.send(consumertest.Heartbeat(devices))
}

// objects reads everything in the bucket.
func (e *env) objects() consumertest.Objects {
	e.t.Helper()
	ctx := context.Background()
	keys, err := e.store.List(ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	o := consumertest.Objects{}
	for _, k := range keys {
		if o[k], err = e.store.Get(ctx, k); err != nil {
			e.t.Fatal(err)
		}
	}
	return o
}

// checkpoints reads the lease table: shard id -> checkpoint.
func (e *env) checkpoints() map[string]string { return e.column("Checkpoint") }

// owners reads the lease table: shard id -> lease owner ("" for none).
func (e *env) owners() map[string]string { return e.column("AssignedTo") }

func (e *env) column(attr string) map[string]string {
	out, err := e.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.name)})
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, it := range out.Items {
		id := it["ShardID"].(*dtypes.AttributeValueMemberS).Value
		if strings.HasPrefix(id, workerKeyPrefix) { // a worker's heartbeat (balance.go)
			continue
		}
		if v, ok := it[attr].(*dtypes.AttributeValueMemberS); ok {
			m[id] = v.Value
		} else {
			m[id] = ""
		}
	}
	return m
}

// waitCheckpointed waits until every shard's checkpoint is where the
// oracle acknowledged, or SHARD_END for closed shards.
func (e *env) waitCheckpointed(want map[string]string, timeout time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := e.checkpoints()
		done := len(got) > 0
		for id, seq := range want {
			if got[id] != seq && got[id] != "SHARD_END" {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("checkpoints after %v: %v; want %v", timeout, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// oracle runs the pipeline over the stream in process, making the
// decisions the consumers recorded so far (cuts: idle shards, stops,
// lease handoffs) at the same records.
func (e *env) oracle() *consumertest.Result {
	e.t.Helper()
	rec, err := journal.Decisions(context.Background(), e.store, e.prefix, e.name)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := consumertest.Oracle(context.Background(), e.k, e.name, e.prefix, e.po, e.bo, rec)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// testPrefix is every test environment's key prefix.
const testPrefix = "lake"

// sameObjects fails unless got holds exactly want's data objects, byte
// for byte.
func sameObjects(t *testing.T, got, want consumertest.Objects) {
	t.Helper()
	got = got.Data(testPrefix)
	for _, k := range want.Keys() {
		if g, ok := got[k]; !ok {
			t.Errorf("missing %s", k)
		} else if !bytes.Equal(g, want[k]) {
			t.Errorf("%s differs from the oracle's", k)
		}
	}
	for _, k := range got.Keys() {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s", k)
		}
	}
}

func start(t *testing.T, o Options) *Consumer {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c.Stop(ctx)
	})
	return c
}

// The consumer writes exactly what the in-process oracle writes, and
// checkpoints each shard at its last record with its state stored.
func TestCommitsEqualOracle(t *testing.T) {
	e := newEnv(t, 2)
	e.put(30, 0, 40)
	e.heartbeat(30)
	want := e.oracle()
	if len(want.Objects) < 4 || len(want.Alerts) == 0 {
		t.Fatalf("oracle wrote %d objects and %d alerts: the test data is too small", len(want.Objects), len(want.Alerts))
	}
	o := e.options("w1")
	o.KCL.MaxRecords = 50 // answers enough to reuse the buffers of
	c := start(t, o)
	e.waitCheckpointed(want.Acked, 60*time.Second)
	got := e.objects()
	sameObjects(t, got, want.Objects)
	// The answers were decoded into released buffers, poisoned in a
	// test binary on release: the same objects say no payload was read
	// after its record.
	if n := c.answers.Reused.Load(); n == 0 {
		t.Errorf("%d of %d GetRecords answers decoded into released buffers", n, c.answers.Fast.Load())
	}
	for id, seq := range e.checkpoints() {
		key := layout.StateDir(e.prefix, e.name, id, seq) + "base.snap"
		if _, ok := got[key]; !ok {
			t.Errorf("shard %s: checkpoint %s has no state %s", id, seq, key)
		}
	}
	if n := e.alerts.Load(); n != int64(len(want.Alerts)) {
		t.Errorf("published %d alerts, oracle %d", n, len(want.Alerts))
	}
}

var _ = errors.New

// testLogLevel is Debug with TAPLINE_TEST_DEBUG=1 (the library's lines).
var testLogLevel = func() slog.Level {
	if os.Getenv("TAPLINE_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}()
