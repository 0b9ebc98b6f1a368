// Package windows owns event-time windowed aggregation per (device,
// metric) for one shard.
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
// inline: a record touches a handful of cache lines.
//
// Time is event time. The watermark is the largest event time seen minus
// the allowed lateness, and never moves backwards; a window closes when the
// watermark reaches its end. A record whose pane was already closed is
// late: Add reports it and the caller routes it to the dead-letter store.
// When no records arrive for Options.IdleTimeout of wall-clock time, Tick
// advances the watermark with the wall clock so a quiet shard still closes
// its windows and missing-data rules can fire.
//
// The idle advance is the one input that is not in the records: a replay
// after a crash reads the same records without the quiet spell. So it is
// split in two: IdleWatermark says where an advance would move the
// watermark, AdvanceIdle applies one. The caller records the watermark
// before applying it, and a replay applies the recorded one at the same
// record (package pipeline/journal does).
//
// Closed windows are delivered to an Output in (end, device, metric, spec)
// order, device ids and metric names in byte order, so everything
// downstream is a deterministic function of the input order. Idle series
// are evicted after Options.SeriesTTL of event time unless the Output
// retains them.
//
// An Aggregator is owned by one goroutine (the shard's) and has no locks.
// Device ids and metric names are interned once per series; in steady
// state Add allocates nothing.
package windows
