package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/config"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/partition"
)

// ErrLeaseLost says another worker owns the shard now: the shard's state
// must be dropped without a checkpoint.
var ErrLeaseLost = errors.New("consumer: lease lost to another worker")

// fencedCheckpointer is the KCL's DynamoDB checkpointer with the three gaps
// that matter to the delivery promise closed:
//
//   - CheckpointSequence is a conditional write on the lease owner. The
//     library's is an unconditional PutItem, so a worker that lost its
//     lease (a long GC pause, a partition) could move the new owner's
//     checkpoint, past records the new owner has not made durable.
//
//   - Lease loss is reported. The library stops the shard's consumer when
//     a renewal fails but never tells the record processor; here a failed
//     renewal or a fenced checkpoint marks the shard lost, and the
//     processor drops its state.
//
//   - Lease renewals never write the checkpoint. The library's renewal is
//     a PutItem of the whole item with the checkpoint it holds in memory;
//     a renewal delayed in flight can land after a newer checkpoint and
//     put the older one back (the fault suite caught this with 300 ms of
//     DynamoDB latency). Here takeLease updates only the owner and the
//     lease timeout, under the same conditions.
//
//   - A released lease stays released. The library cancels a shard's
//     renewal loop and releases its lease without waiting for a renewal
//     already under way; that renewal then found no owner and took the
//     lease again, and a stopped worker kept a shard until the lease
//     expired (TestServiceEndToEnd, under load). Here a renewal never
//     takes an unowned lease, nor marks a lease released during it as
//     owned in the library's memory; a stopping worker takes no new
//     lease; and Stop releases, once renewals in flight are done, every
//     lease this worker took that still names it.
//
// It also lets the consumer fail one shard on purpose (fail): the next
// renewal then fails, the library releases the lease, and the shard starts
// again from its checkpoint, on this worker or another.
type fencedCheckpointer struct {
	*checkpoint.DynamoCheckpoint
	db     *dynamodb.Client
	table  string
	worker string

	stealing bool // lease stealing on: the library's GetLease is used

	stopping atomic.Bool  // Stop began: no new leases
	gate     sync.RWMutex // held for reading by each GetLease call; releaseAll waits them out
	mu       sync.Mutex
	shards   map[string]*shard // live record processors of this worker
	failed   map[string]error  // shards to give up at the next renewal
	taken    map[string]bool   // shards whose lease this worker took
	holds    map[string]bool   // shards whose lease this worker holds now

	// Balancing (balance.go): this worker's target, whether another live
	// worker is under its own, shards to hand off at their next batch,
	// shards handed off (their renewal ends the library's loop), and the
	// open shards the library has asked about.
	target    int // -1: not computed yet
	under     bool
	handoff   map[string]bool
	handedOff map[string]bool
	known     map[string]bool // shard id: open (not at SHARD_END)

	// Leases the balancer's last scan found held by another worker, until
	// when (see skip), and the statuses the library's shard sync offered
	// to GetLease. Skipped counts the lease reads skipped.
	busy    map[string]time.Time
	offered map[*partition.ShardStatus]bool
	Skipped atomic.Uint64
}

func newFencedCheckpointer(cfg *config.KinesisClientLibConfiguration, db *dynamodb.Client) *fencedCheckpointer {
	return &fencedCheckpointer{
		DynamoCheckpoint: checkpoint.NewDynamoCheckpoint(cfg).WithDynamoDB(db),
		db:               db,
		table:            cfg.TableName,
		worker:           cfg.WorkerID,
		shards:           map[string]*shard{},
		failed:           map[string]error{},
		taken:            map[string]bool{},
		holds:            map[string]bool{},
		handoff:          map[string]bool{},
		handedOff:        map[string]bool{},
		known:            map[string]bool{},
		busy:             map[string]time.Time{},
		offered:          map[*partition.ShardStatus]bool{},
		target:           -1,
		stealing:         cfg.EnableLeaseStealing,
	}
}

// FetchCheckpoint is the library's, noting the shards it asks about,
// except for a lease another worker holds (skip).
func (c *fencedCheckpointer) FetchCheckpoint(s *partition.ShardStatus) error {
	if c.skip(s) {
		return nil
	}
	err := c.DynamoCheckpoint.FetchCheckpoint(s)
	c.mu.Lock()
	c.known[s.ID] = s.GetCheckpoint() != checkpoint.ShardEnd
	c.mu.Unlock()
	return err
}

// At every shard sync the library reads, for each shard this worker does
// not hold, its checkpoint (FetchCheckpoint) and then its lease (GetLease,
// two consistent reads in all) until it takes one: in a settled fleet
// every worker reads every other worker's leases at every sync, which
// costs more DynamoDB reads than the leases' renewals and is why the sync
// could not be frequent. The balancer's scan of the lease table already
// says who holds what; a shard another worker held there, with its
// lease's timeout still ahead, is skipped without a read until that
// timeout or two balancing rounds after the scan, whichever comes first.
// A skipped shard is one the read would have refused (its lease is held
// and live); a lease released after the scan waits for the next scan, a
// round at most, and a crashed owner's lease is read again when it
// expires, as before. Only the statuses the library's sync offered to
// GetLease are skipped: its wait for a parent shard's end reads a status
// of its own at every poll.

// setBusy records the leases held by other workers in a scan, until when
// each may be skipped, and the shards the scan found at SHARD_END.
func (c *fencedCheckpointer) setBusy(busy map[string]time.Time, ended []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = busy
	if len(ended) == 0 {
		return
	}
	done := make(map[string]bool, len(ended))
	for _, id := range ended {
		done[id] = true
		if _, ok := c.known[id]; ok {
			c.known[id] = false // skipped shards are not fetched: their end is seen here
		}
	}
	for st := range c.offered { // an ended shard is offered no more
		if done[st.ID] {
			delete(c.offered, st)
		}
	}
}

// skip reports whether a read of s can be skipped (see setBusy).
func (c *fencedCheckpointer) skip(s *partition.ShardStatus) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.offered[s] || c.holds[s.ID] || !time.Now().Before(c.busy[s.ID]) {
		return false
	}
	c.Skipped.Add(1)
	return true
}

// knownOpen is how many open shards the library has asked about.
func (c *fencedCheckpointer) knownOpen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, open := range c.known {
		if open {
			n++
		}
	}
	return n
}

// setTarget records the balancer's latest decision.
func (c *fencedCheckpointer) setTarget(target int, under bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.target, c.under = target, under
}

// handOffOne picks a shard to hand off at its next batch (the highest
// id), unless a handoff is under way; "" if none.
func (c *fencedCheckpointer) handOffOne() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.handoff) > 0 {
		return ""
	}
	var ids []string
	for id := range c.shards {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return ""
	}
	id := slices.Max(ids)
	c.handoff[id] = true
	return id
}

// handingOff reports whether the shard is to be handed off now.
func (c *fencedCheckpointer) handingOff(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handoff[id]
}

// handedOffNow releases a shard whose batch was cut and checkpointed:
// the lease is free for its taker at once, and the library's next
// renewal ends its loop (without a loss: the state is durable).
func (c *fencedCheckpointer) handedOffNow(id string) error {
	c.mu.Lock()
	delete(c.handoff, id)
	delete(c.shards, id)
	delete(c.holds, id)
	c.handedOff[id] = true
	c.mu.Unlock()
	return c.RemoveLeaseOwner(id)
}

// takeLease takes or renews the shard's lease for worker: a conditional
// UpdateItem of the owner and the lease timeout only, on the condition
// the library uses (nobody owns it, or the owner and timeout are still
// the ones read), so a renewal can never move the checkpoint.
func (c *fencedCheckpointer) takeLease(s *partition.ShardStatus, worker string, renewal bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := map[string]types.AttributeValue{checkpoint.LeaseKeyKey: &types.AttributeValueMemberS{Value: s.ID}}
	cur, err := c.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(c.table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	timeout := now.Add(time.Duration(c.LeaseDuration) * time.Millisecond)
	values := map[string]types.AttributeValue{
		":me": &types.AttributeValueMemberS{Value: worker},
		":t":  &types.AttributeValueMemberS{Value: timeout.Format(time.RFC3339Nano)},
	}
	cond := "attribute_not_exists(" + checkpoint.LeaseOwnerKey + ")"
	owner, hasOwner := cur.Item[checkpoint.LeaseOwnerKey].(*types.AttributeValueMemberS)
	oldT, hasT := cur.Item[checkpoint.LeaseTimeoutKey].(*types.AttributeValueMemberS)
	if renewal && (!hasOwner || owner.Value != worker) {
		return checkpoint.ErrLeaseNotAcquired{} // released or taken meanwhile: not ours to renew
	}
	if hasOwner && hasT {
		expires, err := time.Parse(time.RFC3339Nano, oldT.Value)
		if err != nil {
			return err
		}
		if now.Before(expires) && owner.Value != worker {
			return checkpoint.ErrLeaseNotAcquired{}
		}
		cond = checkpoint.LeaseOwnerKey + " = :old AND " + checkpoint.LeaseTimeoutKey + " = :oldt"
		values[":old"], values[":oldt"] = owner, oldT
	}
	update := "SET " + checkpoint.LeaseOwnerKey + " = :me, " + checkpoint.LeaseTimeoutKey + " = :t"
	if s.ParentShardId != "" {
		update += ", " + checkpoint.ParentShardIdKey + " = :parent"
		values[":parent"] = &types.AttributeValueMemberS{Value: s.ParentShardId}
	}
	_, err = c.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(c.table), Key: key, UpdateExpression: aws.String(update),
		ConditionExpression: aws.String(cond), ExpressionAttributeValues: values,
	})
	var condErr *types.ConditionalCheckFailedException
	if errors.As(err, &condErr) {
		return checkpoint.ErrLeaseNotAcquired{}
	}
	if err != nil {
		return err
	}
	s.Mux.Lock()
	defer s.Mux.Unlock()
	if renewal && s.AssignedTo != worker {
		// The library released the lease while this renewal was under
		// way (an ended shard loop does not wait for it): its release
		// removes the owner from the table after this write, so the
		// memory must say free too, or the library never takes the shard
		// again (TestRenewalAnsweredAfterReleaseLeavesTheShardFree).
		return checkpoint.ErrLeaseNotAcquired{}
	}
	s.AssignedTo, s.LeaseTimeout = worker, timeout
	return nil
}

// releaseAll runs when the worker has shut down: it stops new leases,
// waits for GetLease calls in flight and removes this worker as the owner
// of every lease it took that still names it (the library's own release
// may have lost a race with a renewal). It returns the shards released
// here.
func (c *fencedCheckpointer) releaseAll() ([]string, error) {
	c.stopping.Store(true)
	c.gate.Lock() // every GetLease under way has returned; later ones see stopping
	c.mu.Lock()
	ids := make([]string, 0, len(c.taken))
	for id := range c.taken {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	c.gate.Unlock()
	slices.Sort(ids)
	var released []string
	var errs []error
	for _, id := range ids {
		err := c.RemoveLeaseOwner(id) // conditional on this worker owning it
		var condErr *types.ConditionalCheckFailedException
		switch {
		case errors.As(err, &condErr):
		case err != nil:
			errs = append(errs, fmt.Errorf("release %s: %w", id, err))
		default:
			released = append(released, id)
		}
	}
	return released, errors.Join(errs...)
}

func (c *fencedCheckpointer) register(s *shard) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shards[s.id] = s
	delete(c.failed, s.id)
}

func (c *fencedCheckpointer) unregister(s *shard) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shards[s.id] == s {
		delete(c.shards, s.id)
		delete(c.holds, s.id) // the library releases it next
	}
}

// lost marks the shard's processor lost.
func (c *fencedCheckpointer) lost(id string, why error) {
	c.mu.Lock()
	s := c.shards[id]
	delete(c.shards, id)
	delete(c.holds, id)
	delete(c.handoff, id)
	c.mu.Unlock()
	if s != nil {
		s.markLost(why)
	}
}

// fail makes the next renewal of the shard's lease fail.
func (c *fencedCheckpointer) fail(id string, why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed[id] = why
}

// owned returns the ids of the shards this worker processes.
func (c *fencedCheckpointer) owned() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]string, 0, len(c.shards))
	for id := range c.shards {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// GetLease takes or renews a lease. A failed renewal (the shard was ours)
// means the lease is lost.
func (c *fencedCheckpointer) GetLease(s *partition.ShardStatus, worker string) error {
	c.gate.RLock()
	defer c.gate.RUnlock()
	renewal := s.GetLeaseOwner() == worker
	if !renewal && c.stopping.Load() {
		return checkpoint.ErrLeaseNotAcquired{}
	}
	if !renewal && c.skip(s) {
		return checkpoint.ErrLeaseNotAcquired{}
	}
	c.mu.Lock()
	c.offered[s] = true
	why := c.failed[s.ID]
	handedOff := c.handedOff[s.ID]
	if renewal && handedOff {
		delete(c.handedOff, s.ID)
	}
	// At its share, a worker leaves free leases to those under theirs.
	full := !renewal && c.target >= 0 && len(c.holds) >= c.target && c.under
	c.mu.Unlock()
	if renewal && handedOff {
		return checkpoint.ErrLeaseNotAcquired{} // ends the library's loop; the lease is already released
	}
	if full {
		return checkpoint.ErrLeaseNotAcquired{}
	}
	if renewal && why != nil {
		c.lost(s.ID, why)
		return fmt.Errorf("consumer: shard %s given up: %w", s.ID, why)
	}
	var err error
	if c.stealing {
		// Lease stealing needs the library's ClaimRequest handling.
		err = c.DynamoCheckpoint.GetLease(s, worker)
	} else {
		err = c.takeLease(s, worker, renewal)
	}
	if err == nil {
		c.mu.Lock()
		c.taken[s.ID] = true
		c.holds[s.ID] = true
		delete(c.handedOff, s.ID) // taken again later
		c.mu.Unlock()
	}
	if err != nil && renewal {
		c.lost(s.ID, fmt.Errorf("%w: renewal failed: %v", ErrLeaseLost, err))
	}
	return err
}

// CheckpointSequence writes the shard's checkpoint only while this worker
// owns the lease.
func (c *fencedCheckpointer) CheckpointSequence(s *partition.ShardStatus) error {
	values := map[string]types.AttributeValue{
		":cp": &types.AttributeValueMemberS{Value: s.GetCheckpoint()},
		":me": &types.AttributeValueMemberS{Value: c.worker},
	}
	update := "SET " + checkpoint.SequenceNumberKey + " = :cp"
	if s.ParentShardId != "" {
		update += ", " + checkpoint.ParentShardIdKey + " = :parent"
		values[":parent"] = &types.AttributeValueMemberS{Value: s.ParentShardId}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(c.table),
		Key:                       map[string]types.AttributeValue{checkpoint.LeaseKeyKey: &types.AttributeValueMemberS{Value: s.ID}},
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(checkpoint.LeaseOwnerKey + " = :me"),
		ExpressionAttributeValues: values,
	})
	var cond *types.ConditionalCheckFailedException
	if errors.As(err, &cond) {
		err = fmt.Errorf("%w: checkpoint of shard %s refused", ErrLeaseLost, s.ID)
		c.lost(s.ID, err)
		return err
	}
	return err
}
