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
package pipeline
