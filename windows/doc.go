// Package windows owns event-time windowed aggregation per (device,
// metric) for one shard.
//
// Windows are tumbling, hopping, or sessions (session.go: activity
// separated by a gap, kept apart from the panes below).
//
// An Aggregator keeps, for every live series, a small ring of panes: fixed
// slices of event time whose length is the greatest common divisor of all
// window sizes and slides. A record updates exactly one pane per metric,
// whatever the number of window specs; a window is the merge of its panes
// when it closes. So a 15m window sliding by 1m costs one update per record,
// not fifteen. A pane is one 64-byte cache line; panes live in chunks
// without pointers, so the garbage collector never scans them, laid out so
// that the panes a record updates are adjacent. Devices are found through
// an open-addressing table and keep their id and first eight series
// inline: a record touches a handful of cache lines. With hundreds of
// thousands of devices those lines are rarely cached; a caller holding the
// next records names them to Aggregator.Prefetch, which loads them ahead
// (prefetch.go).
//
// Time is event time, and each device keeps its own. A device's
// watermark is its largest event time minus the allowed lateness; its
// windows close when that passes their end, whatever the other devices on
// the shard are doing. So a gateway that comes back online and uploads
// half an hour its pumps buffered has the half hour aggregated into the
// pumps' own windows, in order, while the live devices around it are half
// an hour ahead. A record is late only when its own device's window has
// closed. This is Flink's per-split watermarks taken down to the key:
// Flink keeps a watermark per source split and lets an operator follow the
// slowest split (idle ones excluded); here each device is its own split
// and nothing waits for the slowest, because windows are per device.
//
// The shard still has one watermark, the largest event time seen minus
// the lateness, for what is not per device: missing-data rules, series
// eviction, the batches' flush points. It bounds devices from behind:
// Options.MaxBacklog behind it, every device's windows are closed and
// older records are late. That is also how long the last window of a
// device that falls silent waits for it: the window holding its last
// record stays open in case a backlog continues it, and closes when the
// device sends again past it or the shard's watermark passes it by
// MaxBacklog. Lower MaxBacklog for quicker last windows where devices
// never buffer; a silent device's series live at least that long.
//
// When no records arrive for Options.IdleTimeout of wall-clock time, Tick
// advances the shard's watermark with the wall clock, so missing-data
// rules fire on a quiet shard, and every device's lateness allowance
// expires: the windows each device's own time has passed close.
//
// The idle advance is the one input that is not in the records: a replay
// after a crash reads the same records without the quiet spell. So it is
// split in two: IdleWatermark says where an advance would move the
// watermark, AdvanceIdle applies one. The caller records the watermark
// before applying it, and a replay applies the recorded one at the same
// record (package pipeline/journal does).
//
// Late event hours cost objects, not correctness: a device's backlog
// closes windows of hours the rest of the shard finished, and the sinks
// write them as one more object in that hour's partition, named like any
// other by the batch's sequence numbers, so a replay writes the same
// names.
//
// A device's windows are delivered to an Output when the device closes
// them, in (end, metric, spec) order, metric names in byte order; the
// devices a sweep of the shard closes (MaxBacklog, idle, Flush) come in
// id order. So everything downstream is a deterministic function of the
// input order. Idle series are evicted after Options.SeriesTTL of event
// time, once their windows are delivered, unless the Output retains them.
//
// An Aggregator is owned by one goroutine (the shard's) and has no locks.
// Device ids and metric names are interned once per series; in steady
// state Add allocates nothing.
package windows
