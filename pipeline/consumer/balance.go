package consumer

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/vmware/vmware-go-kcl-v2/clientlibrary/checkpoint"
)

// Cooperative lease balancing. The library's lease stealing did not
// settle (leases kept moving between two workers in 2 of 6 runs) and
// takes a lease without its owner's cut and checkpoint, so it is off;
// instead the workers agree on shares and move leases the graceful way:
//
//   - each worker writes a heartbeat item in the lease table
//     (workerKeyPrefix + its id: the library reads lease items by shard id
//     and skips it) every shard sync, and deletes it when it stops;
//   - each computes, from one consistent scan of the table, every live
//     worker's target: the open leases divided by the live workers, the
//     remainder going to the workers holding most (ties by id), so a
//     balanced fleet has nothing to move and all compute the same;
//   - a worker over its target for a heartbeat lifetime (so a worker
//     that died without deleting its heartbeat is no longer counted)
//     hands one lease off a round, if a worker under its target can take
//     it: its shard
//     cuts and checkpoints at its next batch (the journal's cut), then
//     the lease is released, and its renewal ends the library's loop; the
//     taker restores the state stored with that checkpoint, so no record
//     is read twice and none is skipped;
//   - a worker at its target takes no free lease while another live
//     worker is under its own (the library offers every free lease at
//     each sync).
//
// Fencing is unchanged: checkpoints stay conditional on the owner.

// workerKeyPrefix marks heartbeat items in the lease table.
const workerKeyPrefix = "_worker/"

const heartbeatKey = "Heartbeat"

// balancer runs on its own goroutine; its decisions reach the
// checkpointer (targets, handoffs) under the checkpointer's lock.
type balancer struct {
	c        *Consumer
	interval time.Duration
	ttl      time.Duration // a heartbeat older than this is a dead worker
	over     time.Time     // since when this worker has been over its target (zero: it is not)
	stop     context.CancelFunc
	done     chan struct{} // closed when run returned
}

// run balances every interval until ctx ends.
func (b *balancer) run(ctx context.Context) {
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		if err := b.round(ctx); err != nil && ctx.Err() == nil {
			b.c.log.Warn("lease balancing round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *balancer) table() *string { return aws.String(b.c.ckpt.table) }

// heartbeat announces this worker.
func (b *balancer) heartbeat(ctx context.Context) error {
	_, err := b.c.opts.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: b.table(), Item: map[string]types.AttributeValue{
		checkpoint.LeaseKeyKey: &types.AttributeValueMemberS{Value: workerKeyPrefix + b.c.opts.WorkerID},
		heartbeatKey:           &types.AttributeValueMemberS{Value: time.Now().UTC().Format(time.RFC3339Nano)},
	}})
	return err
}

// leave deletes the heartbeat: the others stop counting this worker at
// their next round.
func (b *balancer) leave(ctx context.Context) error {
	_, err := b.c.opts.DynamoDB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: b.table(), Key: map[string]types.AttributeValue{
		checkpoint.LeaseKeyKey: &types.AttributeValueMemberS{Value: workerKeyPrefix + b.c.opts.WorkerID},
	}})
	return err
}

// view is one scan of the lease table.
type view struct {
	workers []string             // live, sorted
	held    map[string]int       // open leases by owner
	open    int                  // leases not at SHARD_END
	busy    map[string]time.Time // open leases other workers hold: until when to skip reading them
	ended   []string             // shards at SHARD_END
}

func (b *balancer) scan(ctx context.Context) (view, error) {
	v := view{held: map[string]int{}, busy: map[string]time.Time{}}
	owners := map[string]string{}
	now := time.Now()
	var start map[string]types.AttributeValue
	for {
		out, err := b.c.opts.DynamoDB.Scan(ctx, &dynamodb.ScanInput{TableName: b.table(), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
		if err != nil {
			return v, err
		}
		for _, it := range out.Items {
			key := str(it[checkpoint.LeaseKeyKey])
			if id, ok := strings.CutPrefix(key, workerKeyPrefix); ok {
				if t, err := time.Parse(time.RFC3339Nano, str(it[heartbeatKey])); err == nil && now.Sub(t) < b.ttl {
					v.workers = append(v.workers, id)
				}
				continue
			}
			if str(it[checkpoint.SequenceNumberKey]) == checkpoint.ShardEnd {
				v.ended = append(v.ended, key)
				continue
			}
			v.open++
			owner := str(it[checkpoint.LeaseOwnerKey])
			owners[key] = owner
			if timeout, err := time.Parse(time.RFC3339Nano, str(it[checkpoint.LeaseTimeoutKey])); err == nil && owner != "" && owner != b.c.opts.WorkerID {
				v.busy[key] = now.Add(min(timeout.Sub(now), 2*b.interval)) // see fencedCheckpointer.setBusy
			}
		}
		if start = out.LastEvaluatedKey; len(start) == 0 {
			break
		}
	}
	// Shards the library knows and no one has leased yet have no item.
	v.open = max(v.open, b.c.ckpt.knownOpen())
	slices.Sort(v.workers)
	for _, owner := range owners {
		if slices.Contains(v.workers, owner) {
			v.held[owner]++
		}
	}
	return v, nil
}

// targets gives each live worker its share of the open leases: the
// remainder to those holding most, ties by id.
func (v view) targets() map[string]int {
	t := map[string]int{}
	if len(v.workers) == 0 {
		return t
	}
	share, extra := v.open/len(v.workers), v.open%len(v.workers)
	order := slices.Clone(v.workers)
	slices.SortStableFunc(order, func(a, b string) int { return v.held[b] - v.held[a] })
	for i, w := range order {
		t[w] = share
		if i < extra {
			t[w]++
		}
	}
	return t
}

// round heartbeats, recomputes the targets and hands off one lease if
// this worker has been over its target for two rounds.
func (b *balancer) round(ctx context.Context) error {
	if b.c.ckpt.stopping.Load() {
		return nil
	}
	if err := b.heartbeat(ctx); err != nil {
		return err
	}
	v, err := b.scan(ctx)
	if err != nil {
		return err
	}
	b.c.ckpt.setBusy(v.busy, v.ended)
	me := b.c.opts.WorkerID
	targets := v.targets()
	mine, ok := targets[me]
	if !ok { // our heartbeat is not visible yet
		return nil
	}
	under := false
	for _, w := range v.workers {
		if w != me && v.held[w] < targets[w] {
			under = true
		}
	}
	b.c.ckpt.setTarget(mine, under)
	b.c.metrics.leaseTarget.Set(float64(mine))
	if v.held[me] <= mine || !under {
		b.over = time.Time{}
		return nil
	}
	if b.over.IsZero() {
		b.over = time.Now()
	}
	if time.Since(b.over) < b.ttl {
		return nil
	}
	if id := b.c.ckpt.handOffOne(); id != "" {
		b.c.log.Info("handing a lease off: over this worker's share", "shard", id, "held", v.held[me], "target", mine, "workers", len(v.workers))
	}
	return nil
}

func str(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}
