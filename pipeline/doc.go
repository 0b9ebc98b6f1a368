// Package pipeline owns the per-shard processing loop: decode a record
// (schemas), aggregate it into event-time windows (windows), evaluate
// anomaly rules on the windows that close (windows/rules), and hand
// windows, alerts and rejected records to their outputs.
//
// A Processor is owned by one goroutine, the one that owns its shard, and
// shares nothing with other shards, so the loop needs no locks. Every
// output is delivered synchronously, in input order: for the same records
// a Processor produces the same windows, alerts and dead letters, which is
// what lets a replay after a crash reproduce its output exactly.
//
// Bad input never stops the loop: each rejected record is counted by
// reason and written to the dead-letter store with its shard and sequence
// number, and the records around it are processed as usual. Process
// returns an error only when a dead letter cannot be stored, because then
// the shard must not acknowledge the record.
//
// # The delivery promise
//
// A checkpoint of a shard at sequence number L means: every row derived
// from the records up to L (raw records, closed windows, alerts, dead
// letters) is durable in S3, and so is the shard's state after L. Nothing
// is acknowledged before that, and a replay after a crash changes nothing
// in S3. Package journal keeps it this way (package consumer drives it
// from the KCL):
//
//  1. Batches end where the batch writer says: after a number of records
//     or bytes, or when the watermark passes a multiple of FlushEvery.
//     All three are functions of the records, so a replay cuts the same
//     batches. Each batch becomes one object per dataset and event hour,
//     named after the shard and its first and last sequence numbers, with
//     bytes that are a function of its rows.
//  2. At the end of a batch the shard writes its objects (put-if-absent:
//     a replay's second write is a no-op), then its state (a snapshot of
//     what changed since the state before, AppendSnapshotChanges, which
//     names the base of everything it builds on and the states between;
//     a new base first when one is due: BaseDue), then the checkpoint, in
//     that order. The checkpoint write is conditional on the lease owner.
//  3. A new owner restores the state stored with the checkpoint (with
//     its base and the states between: RestoreParts) and continues from
//     the record after it: same state, same records, so
//     the same batches, bytes and alerts (alerts are published to SNS
//     only after their batch is durable; a replay may publish one again,
//     with the same id; the state keeps its batch's notifications until
//     their delivery is confirmed, and a new owner publishes unconfirmed
//     ones again, so a crash after the checkpoint loses none).
//  4. The wall clock decides three things the records do not: idle
//     advances (an idle shard closes its windows), cuts at shutdown or
//     before an idle advance or a reload, and rules reloads (a new rules
//     document or silences). Each is recorded in the store before it is
//     applied, next to the checkpoint it follows, and a restart applies
//     the recorded ones, so they too are replayed exactly.
//
// Why snapshots rather than checkpointing at the oldest record still in an
// open window: replaying from there would rebuild the open windows but
// not the rules' state, which depends on all history (a z-score baseline,
// an alert firing for an hour), and would cut different batches around
// the replayed records, duplicating them in S3. A snapshot holds the open
// panes, a few hundred bytes per live series (BenchmarkSnapshot; figures
// in benchmarks/RESULTS.md), and the rule states, kilobytes a series for
// detectors; most of both do not change in a batch (a pane before its
// device's closed point takes no record, a detector changes when its
// window closes), so each batch stores what changed and a base now and
// then (BenchmarkStates).
package pipeline
