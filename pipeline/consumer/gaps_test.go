package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
	"github.com/tapline/tapline/sinks/layout"
)

// setOwner overwrites a lease as another worker taking it would.
func (e *env) setOwner(shard, owner, checkpoint string) {
	e.t.Helper()
	_, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.name), Item: map[string]dtypes.AttributeValue{
		"ShardID":      &dtypes.AttributeValueMemberS{Value: shard},
		"AssignedTo":   &dtypes.AttributeValueMemberS{Value: owner},
		"LeaseTimeout": &dtypes.AttributeValueMemberS{Value: time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)},
		"Checkpoint":   &dtypes.AttributeValueMemberS{Value: checkpoint},
	}})
	if err != nil {
		e.t.Fatal(err)
	}
}

// fencedFor returns an environment and worker w1's checkpointer over its
// lease table, created.
func fencedFor(t *testing.T) (*env, *fencedCheckpointer) {
	e := newEnv(t, 1)
	cfg := config.NewKinesisClientLibConfig(e.name, e.name, "us-east-1", "w1").WithFailoverTimeMillis(60_000)
	c := newFencedCheckpointer(cfg, e.db)
	if err := c.Init(); err != nil {
		t.Fatal(err)
	}
	waitTable(t, e.db, e.name)
	return e, c
}

// The library's checkpoint is an unconditional PutItem: a worker that
// lost its lease overwrites the new owner's checkpoint. Ours is refused
// and reports the loss.
func TestCheckpointIsFencedOnTheLeaseOwner(t *testing.T) {
	e, c := fencedFor(t)
	st := &partition.ShardStatus{ID: "shardId-000000000000", Mux: &sync.RWMutex{}}
	if err := c.GetLease(st, "w1"); err != nil {
		t.Fatal(err)
	}
	st.SetCheckpoint("100")
	if err := c.CheckpointSequence(st); err != nil {
		t.Fatalf("checkpoint by the owner: %v", err)
	}
	if got := e.checkpoints()[st.ID]; got != "100" {
		t.Fatalf("checkpoint = %q, want 100", got)
	}
	// A renewal holding an older checkpoint in memory (the library's
	// renewal would write it back) leaves the stored one alone.
	st.SetCheckpoint("50")
	if err := c.GetLease(st, "w1"); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if got := e.checkpoints()[st.ID]; got != "100" {
		t.Fatalf("a renewal moved the checkpoint back to %q", got)
	}
	e.setOwner(st.ID, "w2", "200") // w2 took the lease and checkpointed
	st.SetCheckpoint("150")
	if err := c.CheckpointSequence(st); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("checkpoint after losing the lease = %v, want ErrLeaseLost", err)
	}
	if got := e.checkpoints()[st.ID]; got != "200" {
		t.Fatalf("the new owner's checkpoint became %q", got)
	}
}

// The library releases a shard's lease without waiting for a renewal
// under way; the renewal then took the unowned lease again and a stopped
// worker kept the shard until the lease expired. A renewal never takes an
// unowned lease, a stopping worker takes none, and releaseAll removes
// what a renewal may still have left.
func TestReleasedLeaseStaysReleased(t *testing.T) {
	e, c := fencedFor(t)
	a := &partition.ShardStatus{ID: "shardId-000000000000", Mux: &sync.RWMutex{}}
	if err := c.GetLease(a, "w1"); err != nil {
		t.Fatal(err)
	}
	// The library's release: the owner goes, in memory and in the table.
	if err := c.RemoveLeaseOwner(a.ID); err != nil {
		t.Fatal(err)
	}
	// A renewal that started before the release (it saw itself as owner).
	renewal := &partition.ShardStatus{ID: a.ID, Mux: &sync.RWMutex{}, AssignedTo: "w1"}
	if err := c.GetLease(renewal, "w1"); err == nil {
		t.Fatal("a renewal took the released lease")
	}
	if owner := e.owners()[a.ID]; owner != "" {
		t.Fatalf("owner after the release and a late renewal: %q", owner)
	}
	// Stopping: a lease the library left behind (here: written by hand,
	// as a renewal that beat the release would) is released; no new one
	// is taken.
	b := &partition.ShardStatus{ID: "shardId-000000000001", Mux: &sync.RWMutex{}}
	if err := c.GetLease(b, "w1"); err != nil {
		t.Fatal(err)
	}
	c.stopping.Store(true)
	fresh := &partition.ShardStatus{ID: "shardId-000000000002", Mux: &sync.RWMutex{}}
	if err := c.GetLease(fresh, "w1"); err == nil {
		t.Fatal("a stopping worker took a new lease")
	}
	released, err := c.releaseAll()
	if err != nil || !slices.Equal(released, []string{b.ID}) {
		t.Fatalf("released %v, %v; want [%s]", released, err, b.ID)
	}
	if owners := e.owners(); owners[a.ID] != "" || owners[b.ID] != "" || owners[fresh.ID] != "" {
		t.Fatalf("owners after releaseAll: %v", owners)
	}
}

// A shard sync reads, for each lease this worker does not hold, its
// checkpoint and its lease: in a settled fleet, every worker every other
// worker's leases at every sync. A lease the balancer's scan found held
// elsewhere is skipped without a read while that lease lasts (and the
// scan is recent); a status the library's sync did not offer (its wait
// for a parent shard's end) is always read, and so is a lease once the
// scan's entry for it has run out.
func TestSyncSkipsLeasesHeldElsewhere(t *testing.T) {
	e, c := fencedFor(t)
	const id = "shardId-000000000000"
	e.setOwner(id, "w2", "100")
	s := &partition.ShardStatus{ID: id, Mux: &sync.RWMutex{}}
	shardSync := func() error { // what the library's shard sync does with s
		if err := c.FetchCheckpoint(s); err != nil {
			return err
		}
		return c.GetLease(s, "w1")
	}
	if err := shardSync(); !errors.As(err, &checkpoint.ErrLeaseNotAcquired{}) || s.GetCheckpoint() != "100" {
		t.Fatalf("first sync: %v, checkpoint %q; want the lease refused after reading checkpoint 100", err, s.GetCheckpoint())
	}
	c.setBusy(map[string]time.Time{id: time.Now().Add(time.Hour)}, nil)
	e.setOwner(id, "w2", "200") // moved on: a read would see it
	if err := shardSync(); !errors.As(err, &checkpoint.ErrLeaseNotAcquired{}) || s.GetCheckpoint() != "100" || c.Skipped.Load() != 2 {
		t.Fatalf("sync while held elsewhere: %v, checkpoint %q, %d reads skipped; want refused, 100 (not read), 2", err, s.GetCheckpoint(), c.Skipped.Load())
	}
	parent := &partition.ShardStatus{ID: id, Mux: &sync.RWMutex{}}
	for range 2 {
		if err := c.FetchCheckpoint(parent); err != nil || parent.GetCheckpoint() != "200" {
			t.Fatalf("a status the sync did not offer: %v, checkpoint %q; want 200 read", err, parent.GetCheckpoint())
		}
	}
	c.setBusy(map[string]time.Time{id: time.Now().Add(-time.Millisecond)}, nil)
	if err := shardSync(); !errors.As(err, &checkpoint.ErrLeaseNotAcquired{}) || s.GetCheckpoint() != "200" {
		t.Fatalf("after the entry ran out: %v, checkpoint %q; want 200 read", err, s.GetCheckpoint())
	}
	// Released meanwhile and still listed busy: skipped until the next
	// scan, which no longer lists it; then taken.
	if _, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.name), Item: map[string]dtypes.AttributeValue{
		"ShardID": &dtypes.AttributeValueMemberS{Value: id}, "Checkpoint": &dtypes.AttributeValueMemberS{Value: "300"},
	}}); err != nil {
		t.Fatal(err)
	}
	c.setBusy(map[string]time.Time{id: time.Now().Add(time.Hour)}, nil)
	if err := shardSync(); err == nil {
		t.Fatal("took a lease the last scan had held elsewhere without reading it")
	}
	c.setBusy(map[string]time.Time{}, nil)
	if err := shardSync(); err != nil || e.owners()[id] != "w1" {
		t.Fatalf("after a scan without it: %v, owner %q; want taken", err, e.owners()[id])
	}
}

// The library's release of a shard whose loop ended (an expired
// iterator) sets the lease owner to "" in memory and then removes it from
// the table, without waiting for a renewal under way. A renewal whose
// write reached the table first, but whose answer came back after the
// release began, set the owner in memory back to this worker: the table
// said free, the library's memory said ours, and no worker took the shard
// again (TestFaultKinesisThrottling, once in about ten runs: no shard
// restart for two minutes). A renewal now leaves a released shard
// released, in memory as in the table.
func TestRenewalAnsweredAfterReleaseLeavesTheShardFree(t *testing.T) {
	e, c := fencedFor(t)
	a := &partition.ShardStatus{ID: "shardId-000000000000", Mux: &sync.RWMutex{}}
	if err := c.GetLease(a, "w1"); err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	c.db = dynamodb.New(e.db.Options(), func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("release-meanwhile", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				if _, ok := in.Parameters.(*dynamodb.UpdateItemInput); ok && armed.CompareAndSwap(true, false) {
					// The renewal's write is in the table; its answer is
					// not back yet: the library releases the lease.
					a.SetLeaseOwner("")
					if err := c.RemoveLeaseOwner(a.ID); err != nil {
						t.Errorf("release: %v", err)
					}
				}
				return out, md, err
			}), middleware.After)
		})
	})
	armed.Store(true)
	err := c.GetLease(a, "w1") // the renewal
	if armed.Load() {
		t.Fatal("the release was not run during the renewal")
	}
	if owner := a.GetLeaseOwner(); owner == "w1" {
		t.Fatalf("after a release during a renewal the library's memory says the lease is w1's (renewal: %v); the table says %q", err, e.owners()[a.ID])
	}
	if owner := e.owners()[a.ID]; owner != "" {
		t.Fatalf("owner in the table after the release: %q", owner)
	}
	// And the shard can be taken again, as the library's next sync does.
	if err := c.GetLease(a, "w1"); err != nil || a.GetLeaseOwner() != "w1" || e.owners()[a.ID] != "w1" {
		t.Fatalf("taking the released shard again: %v, memory %q, table %q", err, a.GetLeaseOwner(), e.owners()[a.ID])
	}
}

// A lost lease reaches the shard: it stops, drops its state and never
// checkpoints again, whatever it still reads.
func TestLostLeaseStopsTheShard(t *testing.T) {
	e := newEnv(t, 1)
	e.put(10, 0, 20)
	e.heartbeat(10)
	first := e.oracle()
	c := start(t, e.options("w1"))
	e.waitCheckpointed(first.Acked, 30*time.Second)
	const shard = "shardId-000000000000"
	e.setOwner(shard, "w2", "1")
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(c.metrics.leasesLost) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the lease loss was not noticed in 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.put(10, 20, 30) // more records a zombie would checkpoint
	e.heartbeat(10)
	time.Sleep(3 * time.Second)
	if got := e.checkpoints()[shard]; got != "1" {
		t.Fatalf("checkpoint moved to %s after the lease was lost", got)
	}
	for _, id := range c.Owned() {
		if id == shard {
			t.Fatal("the worker still lists the lost shard")
		}
	}
}

// faultyStore fails or panics on chosen Puts.
type faultyStore struct {
	Store
	put func(key string) error // called before each Put; may panic
}

func (f *faultyStore) Put(ctx context.Context, key string, data []byte) (bool, error) {
	if err := f.put(key); err != nil {
		return false, err
	}
	return f.Store.Put(ctx, key, data)
}

// A panic outside record decoding (here in the store) would kill the
// process under the library; it restarts the shard from its checkpoint,
// and the output is still the oracle's.
func TestPanicRestartsTheShard(t *testing.T) {
	e := newEnv(t, 2)
	e.put(20, 0, 40)
	e.heartbeat(20)
	want := e.oracle()
	var puts, panics atomic.Int64
	o := e.options("w1")
	o.Store = &faultyStore{Store: e.store, put: func(string) error {
		if puts.Add(1) == 3 {
			panics.Add(1)
			panic("injected")
		}
		return nil
	}}
	c := start(t, o)
	e.waitCheckpointed(want.Acked, 60*time.Second)
	if panics.Load() != 1 || testutil.ToFloat64(c.metrics.shardFailures) != 1 {
		t.Fatalf("panics %d, shard failures %v: the fault was not injected", panics.Load(), testutil.ToFloat64(c.metrics.shardFailures))
	}
	sameObjects(t, e.objects(), want.Objects)
}

// The library gives up a shard on ExpiredIteratorException; the lease is
// released and taken again, and the shard resumes from its checkpoint
// and state: nothing lost, nothing written twice.
func TestExpiredIteratorResumes(t *testing.T) {
	e := newEnv(t, 1)
	e.put(20, 0, 60)
	e.heartbeat(20)
	want := e.oracle()
	var calls, injected atomic.Int64
	o := e.options("w1")
	o.KCL.MaxRecords = 100 // many GetRecords calls
	o.Kinesis = kinesis.New(e.k.Options(), func(ko *kinesis.Options) {
		ko.APIOptions = append(ko.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("expire", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if _, ok := in.Parameters.(*kinesis.GetRecordsInput); ok && calls.Add(1) == 4 {
					injected.Add(1)
					return middleware.InitializeOutput{}, middleware.Metadata{}, &ktypesExpired
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
		})
	})
	c := start(t, o)
	e.waitCheckpointed(want.Acked, 60*time.Second)
	if injected.Load() != 1 || testutil.ToFloat64(c.metrics.leasesTaken) < 2 {
		t.Fatalf("expired iterators injected %d, leases taken %v: want 1 and a second lease", injected.Load(), testutil.ToFloat64(c.metrics.leasesTaken))
	}
	sameObjects(t, e.objects(), want.Objects)
}

// A restart in the middle of the stream (graceful: the open batch is cut
// and checkpointed) resumes from the stored state: the rows in S3 are
// the oracle's rows, none missing, none twice, windows across the
// restart whole.
func TestRestartKeepsRows(t *testing.T) {
	e := newEnv(t, 2)
	e.put(20, 0, 30)
	c1, err := New(e.options("w1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Let it read everything, then stop it with windows open.
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(c1.metrics.records) < float64(len(e.records)) {
		if time.Now().After(deadline) {
			t.Fatal("records not read in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e.put(20, 30, 80)
	e.heartbeat(20)
	want := e.oracle()
	start(t, e.options("w2"))
	e.waitCheckpointed(want.Acked, 60*time.Second)
	sameRows(t, e.objects(), want.Objects, e.prefix)
}

// sameRows compares every dataset's rows with DuckDB, as multisets.
func sameRows(t *testing.T, got, want consumertest.Objects, prefix string) {
	t.Helper()
	server.Require(t, duckdb.Available())
	dir := t.TempDir()
	a, b := filepath.Join(dir, "got"), filepath.Join(dir, "want")
	if err := got.Data(testPrefix).WriteDir(a); err != nil {
		t.Fatal(err)
	}
	if err := want.WriteDir(b); err != nil {
		t.Fatal(err)
	}
	for _, ds := range []string{"raw", "windows", "alerts"} {
		if _, err := os.Stat(filepath.Join(b, prefix, ds)); err != nil {
			t.Fatalf("oracle wrote no %s", ds)
		}
		n, diff, err := consumertest.SameRows(a, b, prefix, ds)
		if err != nil {
			t.Fatal(err)
		}
		if diff != "" {
			t.Errorf("%s rows differ from the oracle's:\n%s", ds, diff)
		}
		t.Logf("%s: %d rows equal to the oracle's", ds, n)
	}
}

var ktypesExpired = ktypes.ExpiredIteratorException{Message: aws.String("Iterator expired (injected)")}

func waitTable(t *testing.T, db *dynamodb.Client, name string) {
	t.Helper()
	for range 200 {
		out, err := db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err == nil && out.Table.TableStatus == dtypes.TableStatusActive {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("table %s not active", name)
}

// The library starts every shard without a checkpoint at the configured
// initial position, children of a split included: with LATEST they would
// skip what was written to them before their lease was taken. LATEST is
// resolved to AT_TIMESTAMP of the application's first start instead, and
// the parent's end is flushed and checkpointed SHARD_END so the children
// start: no record of parent or children is lost.
func TestSplitLosesNoRecord(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	// The application started a moment ago. (kinesalite never answers an
	// AT_TIMESTAMP iterator request for a shard with no record after the
	// timestamp, so the records go first here; the consumer bounds the
	// call and retries, but the test need not wait for that.)
	first := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	if _, err := e.store.Put(ctx, layout.FirstStart(e.prefix, e.name), []byte(first)); err != nil {
		t.Fatal(err)
	}
	e.put(20, 0, 30)
	o := e.options("w1")
	o.InitialPosition = Latest
	start(t, o)
	shards, err := e.k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(e.name)})
	if err != nil {
		t.Fatal(err)
	}
	parent := shards.Shards[0]
	// Split at the middle of the hash key range.
	mid := new(big.Int)
	mid.SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
	mid.Rsh(mid, 1)
	if _, err := e.k.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(e.name), ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatal(err)
	}
	if err := stack.WaitActive(ctx, e.k, e.name); err != nil {
		t.Fatal(err)
	}
	e.put(20, 30, 60) // to the children, before their leases are taken
	e.heartbeat(20)
	want := e.oracle()
	if len(want.Acked) != 3 || want.Acked[aws.ToString(parent.ShardId)] != "SHARD_END" {
		t.Fatalf("oracle acknowledged %v: want a closed parent and two children", want.Acked)
	}
	e.waitCheckpointed(want.Acked, 60*time.Second)
	sameRows(t, e.objects(), want.Objects, e.prefix)
	t.Logf("%d records written, parent and children checkpointed %v", len(e.records), e.checkpoints())
}

func waitOwned(t *testing.T, c *Consumer, n int) time.Duration {
	t.Helper()
	began := time.Now()
	for len(c.Owned()) < n {
		if time.Since(began) > 30*time.Second {
			t.Fatalf("%d of %d shards owned after 30 s", len(c.Owned()), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(began)
}

// The library takes one lease per shard sync; with the sync interval
// tuned, a 4-shard stream is fully owned within seconds.
func TestFourShardsOwnedQuickly(t *testing.T) {
	e := newEnv(t, 4)
	c := start(t, e.options("w1"))
	took := waitOwned(t, c, 4)
	t.Logf("4 shards owned %v after start (shard sync %v)", took.Round(time.Millisecond), e.options("").KCL.ShardSync)
	if took > 10*time.Second {
		t.Fatalf("4 shards took %v to own", took)
	}
}

// An idle shard closes its windows from the wall clock: the open batch is
// cut (the cut recorded first), the idle advance recorded, applied and
// written as a batch named after the watermark, and the state after it
// stored. A restart that finds the advance recorded but not its state
// (a crash in between) applies the recorded watermark again and writes
// the same objects: nothing twice. (The idle advance closes the windows
// a device's own time passed but its lateness held open: keg-0001's
// [12:04, 12:05).)
func TestIdleAdvanceIsReplayedExactly(t *testing.T) {
	e := newEnv(t, 1)
	e.po.Windows.IdleTimeout = time.Second
	e.po.Windows.AllowedLateness = 10 * time.Second
	e.put(10, 0, 30) // 12:00:00 to 12:04:50
	e.send([]stack.Record{{Key: "keg-0001", Data: []byte(`{"device_id":"keg-0001","ts":"2026-11-20T12:05:00.5Z","metrics":{"temp_c":4}}`)}})
	c1, err := New(e.options("w1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := layout.Under(e.prefix, layout.State+"/"+e.name+"/shardId-000000000000/") // every position
	var snap string
	deadline := time.Now().Add(30 * time.Second)
	for snap == "" {
		if time.Now().After(deadline) {
			t.Fatal("no idle advance in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
		keys, _ := e.store.List(ctx, dir)
		for _, k := range keys {
			if strings.Contains(k, "/idle-") && strings.HasSuffix(k, ".snap") {
				snap = k
			}
		}
	}
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c1.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	before := e.objects().Data(testPrefix)
	var idleObjects int
	for k := range before {
		if strings.Contains(k, "-w") {
			idleObjects++
		}
	}
	if idleObjects == 0 {
		t.Fatalf("no batch named after the idle watermark among %v", before.Keys())
	}
	// A crash after the idle batch, before its state.
	if _, err := e.store.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("b-" + e.name), Key: aws.String(snap)}); err != nil {
		t.Fatal(err)
	}
	c2 := start(t, e.options("w2"))
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := e.store.Get(ctx, snap); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the recorded idle advance was not completed in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := e.objects().Data(testPrefix)
	sameObjects(t, after, before)
	if n := testutil.CollectAndCount(c2.metrics.stateResets); n != 0 {
		t.Fatalf("state resets of %d causes", n)
	}
}

// MergeShards during consumption: both parents are flushed and
// checkpointed SHARD_END, the child reads everything after them; no record
// is lost. (The library waits on one parent only, so the child may start
// before the adjacent parent ends; with per-shard state that changes no
// row, as the oracle comparison shows.)
func TestMergeLosesNoRecord(t *testing.T) {
	e := newEnv(t, 2)
	e.put(20, 0, 30)
	start(t, e.options("w1"))
	ctx := context.Background()
	shards, err := e.k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(e.name)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.k.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(e.name),
		ShardToMerge: shards.Shards[0].ShardId, AdjacentShardToMerge: shards.Shards[1].ShardId}); err != nil {
		t.Fatal(err)
	}
	if err := stack.WaitActive(ctx, e.k, e.name); err != nil {
		t.Fatal(err)
	}
	e.put(20, 30, 60)
	e.heartbeat(20)
	want := e.oracle()
	if len(want.Acked) != 3 {
		t.Fatalf("oracle acknowledged %v: want two closed parents and a child", want.Acked)
	}
	e.waitCheckpointed(want.Acked, 60*time.Second)
	sameRows(t, e.objects(), want.Objects, e.prefix)
	t.Logf("parents and child checkpointed %v", e.checkpoints())
}

// With lease stealing on (the library's), a worker that joins late takes
// shards from the one that holds them all, the way a scaled-out ECS
// service would spread, and whatever the leases do, what the two write is
// exactly the oracle's: each handover cuts, stores and checkpoints the
// batch before the lease moves, or the next owner replays it. The library
// does not always settle: in 2 of 6 runs leases kept moving between the
// two for the 10 s watched (RELIABILITY.md); the moves are logged, not
// asserted, and stealing stays off by default.
func TestLeaseStealingKeepsOutputExact(t *testing.T) {
	e := newEnv(t, 4)
	e.put(30, 0, 40)
	e.heartbeat(30)
	want := e.oracle()
	o1 := e.options("w1")
	o1.KCL.LeaseStealing = true
	w1 := start(t, o1)
	waitOwned(t, w1, 4)
	o2 := e.options("w2")
	o2.KCL.LeaseStealing = true
	w2 := start(t, o2)
	took := waitOwned(t, w2, 2)
	moves, last := 0, fmt.Sprint(w1.Owned(), w2.Owned())
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if now := fmt.Sprint(w1.Owned(), w2.Owned()); now != last {
			moves++
			last = now
		}
	}
	t.Logf("w2 owned 2 of 4 shards %v after it started; then the owners changed %d times in 10 s; now %s", took.Round(time.Millisecond), moves, last)
	e.waitCheckpointed(want.Acked, 60*time.Second)
	sameObjects(t, e.objects(), want.Objects)
}
