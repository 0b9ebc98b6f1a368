package backtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tapline/tapline/sinks/compact"
	"github.com/tapline/tapline/sinks/layout"
)

// Objects is what ReadS3 needs of a bucket; *s3sink.Store has it.
type Objects interface {
	List(ctx context.Context, prefix string) ([]string, error)
	Get(ctx context.Context, key string) ([]byte, error)
}

// Range is an event-time range [From, To) in Unix ms; a zero bound is
// open.
type Range struct{ From, To int64 }

// Contains reports whether event time at lies in the range.
func (r Range) Contains(at int64) bool {
	return (r.From == 0 || at >= r.From) && (r.To == 0 || at < r.To)
}

// maxDayLists bounds the listings of a bounded range; a longer one lists
// the whole dataset once and filters the keys.
const maxDayLists = 400

// RawKeys lists the raw dataset's Parquet objects under prefix whose
// hour partition (dt=, hour=) overlaps r, in event-hour order: the files
// the views show (package compact), landing files not yet compacted and
// the compacted files that replaced the others. One listing of each
// location per day of a bounded range, of the whole dataset otherwise,
// then three per partition found.
func RawKeys(ctx context.Context, objs Objects, prefix string, r Range) ([]string, error) {
	if err := layout.ValidPrefix(prefix); prefix != "" && err != nil {
		return nil, err
	}
	hour := int64(time.Hour / time.Millisecond)
	var days []string
	if r.From != 0 && r.To != 0 && (r.To-r.From)/(24*hour) < maxDayLists {
		for d := time.UnixMilli(r.From).UTC().Truncate(24 * time.Hour); d.UnixMilli() < r.To; d = d.Add(24 * time.Hour) {
			days = append(days, "dt="+d.Format("2006-01-02")+"/")
		}
	} else {
		days = []string{""}
	}
	parts := map[string]bool{}
	for _, day := range days {
		for _, dir := range []string{layout.Raw + "/", layout.CompactedPartition(layout.Raw, "")} {
			found, err := objs.List(ctx, layout.Under(prefix, dir+day))
			if err != nil {
				return nil, err
			}
			for _, k := range found {
				if !strings.HasSuffix(k, ".parquet") {
					continue
				}
				start, ok := partitionHour(k)
				if !ok || (r.To != 0 && start >= r.To) || (r.From != 0 && start+hour <= r.From) {
					continue
				}
				_, rest, _ := strings.Cut(k, "/dt=")
				parts["dt="+rest[:len("2026-11-27/hour=18")]] = true
			}
		}
	}
	var keys []string
	for _, part := range slices.Sorted(maps.Keys(parts)) {
		visible, err := compact.Visible(ctx, objs, prefix, layout.Raw, part)
		if err != nil {
			return nil, err
		}
		for _, f := range visible {
			keys = append(keys, layout.Under(prefix, f))
		}
	}
	return keys, nil
}

// partitionHour is the start (Unix ms) of the event hour of a key's
// partition, ".../dt=2026-11-27/hour=18/...".
func partitionHour(key string) (int64, bool) {
	_, rest, ok := strings.Cut(key, "/dt=")
	if !ok || len(rest) < len("2026-11-27/hour=18") || rest[10:16] != "/hour=" {
		return 0, false
	}
	t, err := time.Parse("2006-01-02T15", rest[:10]+"T"+rest[16:18])
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// ReadS3 reads the raw dataset's objects under prefix that RawKeys finds
// for r and keeps the readings in r, in key order. progress, if not nil,
// is called after each object with the objects read and their number.
func ReadS3(ctx context.Context, objs Objects, prefix string, r Range, progress func(done, total int)) ([]Reading, error) {
	keys, err := RawKeys(ctx, objs, prefix, r)
	if err != nil {
		return nil, err
	}
	var all []Reading
	for i, k := range keys {
		data, err := objs.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		rs, err := ReadRawParquet(k, data)
		if err != nil {
			return nil, err
		}
		for _, rd := range rs {
			if r.Contains(rd.At) {
				all = append(all, rd)
			}
		}
		if progress != nil {
			progress(i+1, len(keys))
		}
	}
	return all, nil
}

// ParseS3URL splits "s3://bucket/prefix" (prefix optional).
func ParseS3URL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	if !ok || bucket == "" {
		return "", "", fmt.Errorf("%q is not s3://bucket[/prefix]", u)
	}
	return bucket, strings.TrimSuffix(prefix, "/"), nil
}

// ReadInputs reads every input: s3://bucket/prefix URLs (the raw dataset,
// through the Objects bucket returns for the bucket) and local paths
// (ReadPaths), keeping the readings in r. progress, if not nil, reports
// S3 objects read.
func ReadInputs(ctx context.Context, inputs []string, r Range, bucket func(name string) (Objects, error), progress func(done, total int)) ([]Reading, error) {
	var all, local []Reading
	var paths []string
	for _, in := range inputs {
		if !strings.HasPrefix(in, "s3://") {
			paths = append(paths, in)
			continue
		}
		name, prefix, err := ParseS3URL(in)
		if err != nil {
			return nil, err
		}
		objs, err := bucket(name)
		if err != nil {
			return nil, err
		}
		rs, err := ReadS3(ctx, objs, prefix, r, progress)
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	if len(paths) > 0 {
		rs, err := ReadPaths(paths)
		if err != nil {
			return nil, err
		}
		for _, rd := range rs {
			if r.Contains(rd.At) {
				local = append(local, rd)
			}
		}
	}
	return append(all, local...), nil
}

// ParseTime reads a -from or -to argument: a time as CSV inputs write
// it (RFC 3339, YYYY-MM-DD HH:MM:SS, or a date: UTC midnight), or a
// duration before now ("168h", "7d").
// Empty is 0, an open bound.
func ParseTime(s string, now time.Time) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if ms, err := parseTime(s); err == nil {
		return ms, nil
	}
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("time %q is not RFC 3339, YYYY-MM-DD or a duration ago like 168h or 7d", s)
	}
	return now.Add(-d).UnixMilli(), nil
}
