package journal

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tapline/tapline/sinks/layout"
)

// FirstStart returns the application's first start time, recording now
// if this is the first (put-if-absent: of two workers starting together,
// the first write wins and both read it). An initial position of LATEST
// resolves to it, for every shard, so the children of a later split are
// read from there and skip nothing.
//
// The time is kept under layout.FirstStart, which never expires. A time
// recorded by an earlier release under the expiring state namespace
// (layout.LegacyFirstStart) is carried over.
func FirstStart(ctx context.Context, store Store, prefix, app string, now time.Time) (time.Time, error) {
	key := layout.FirstStart(prefix, app)
	first := []byte(now.UTC().Format(time.RFC3339Nano))
	legacy := layout.LegacyFirstStart(prefix, app)
	keys, err := store.List(ctx, legacy)
	if err != nil {
		return time.Time{}, err
	}
	if slices.Contains(keys, legacy) {
		if first, err = store.Get(ctx, legacy); err != nil {
			return time.Time{}, err
		}
	}
	if _, err := store.Put(ctx, key, first); err != nil {
		return time.Time{}, err
	}
	b, err := store.Get(ctx, key)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("journal: first start %s: %w", key, err)
	}
	return t, nil
}
