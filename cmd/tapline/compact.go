package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tapline/tapline/pipeline/service"
	"github.com/tapline/tapline/sinks/compact"
	"github.com/tapline/tapline/sinks/localdir"
)

const compactUsage = `usage: tapline compact [-config file.yaml | -dir DIR] [-settle 2h | -before T] [-status]

Rewrites each closed hour of the raw, windows and alerts datasets as a few
large Parquet files sorted by device and time, for Athena, and commits each
with a manifest the views (tapline athena-ddl) read: a query sees an hour's
files once, before, during and after. Safe to stop at any point and to run
again; run it on a schedule (the stack runs it hourly). The files an hour
replaced are deleted by the next run (-delete-now: at once).

With -config (or TAPLINE_* variables) it works on the service's bucket and
prefix; with -dir on a directory laid out as one (tapline demo's -out).`

func runCompact(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tapline compact", flag.ContinueOnError)
	dir := fs.String("dir", "", "compact a local directory (tapline demo's output) instead of the service's bucket")
	settle := fs.Duration("settle", 2*time.Hour, "compact hours that ended at least this long ago: more than the allowed lateness and the longest window")
	beforeArg := fs.String("before", "", "compact hours that ended by this event time instead (RFC 3339)")
	datasets := fs.String("datasets", strings.Join(compact.Datasets(), ","), "datasets to compact")
	targetMB := fs.Int64("target-mb", 128, "size to aim at for one output file, MB")
	memoryMB := fs.Int64("memory-mb", 1024, "rows held decoded to sort one generation, MB (the heap peaks at about 3x)")
	deleteNow := fs.Bool("delete-now", false, "delete replaced files right after the commit, not on the next run")
	status := fs.Bool("status", false, "print each partition's file counts and change nothing")
	cfg, err := parseServiceFlags(fs, args, compactUsage, func() bool { return *dir != "" })
	if err != nil {
		return err
	}
	o := compact.Options{
		Datasets:       strings.Split(*datasets, ","),
		Before:         time.Now().Add(-*settle).UnixMilli(),
		TargetBytes:    *targetMB << 20,
		MaxMemoryBytes: *memoryMB << 20,
		DeleteNow:      *deleteNow,
		Progress: func(p compact.Partition) {
			switch {
			case p.Err != nil:
				fmt.Fprintf(out, "%-7s %s: %v\n", p.Dataset, p.Part, p.Err)
			case p.Outputs > 0:
				fmt.Fprintf(out, "%-7s %s: %d files -> %d (generation %d, %d this run), %d rows, %.1f -> %.1f MB, %d deleted, %.2f s\n",
					p.Dataset, p.Part, p.Sources, p.Outputs, p.Generation, p.Generations, p.Rows, mb(p.BytesIn), mb(p.BytesOut), p.Deleted, p.Elapsed.Seconds())
			case p.Deleted > 0:
				fmt.Fprintf(out, "%-7s %s: %d replaced files deleted\n", p.Dataset, p.Part, p.Deleted)
			}
		},
	}
	if *beforeArg != "" {
		t, err := time.Parse(time.RFC3339, *beforeArg)
		if err != nil {
			return fmt.Errorf("tapline compact: -before: %w", err)
		}
		o.Before = t.UnixMilli()
	}
	if *dir != "" {
		store, err := localdir.New(*dir)
		if err != nil {
			return err
		}
		o.Store = store
	}
	if *status {
		var st []compact.Status
		if o.Store != nil {
			st, err = compact.Statuses(ctx, o.Store, "", o.Datasets)
		} else {
			st, err = service.CompactStatus(ctx, cfg, o.Datasets)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-7s %-22s %8s %10s %8s\n", "dataset", "partition", "landing", "compacted", "visible")
		small := 0
		for _, s := range st {
			fmt.Fprintf(out, "%-7s %-22s %8d %10d %8d\n", s.Dataset, s.Part, s.Landing, s.Compacted, s.Visible)
			small += s.Visible
		}
		fmt.Fprintf(out, "%d partitions, %d files a query lists\n", len(st), small)
		return nil
	}
	var rep compact.Report
	if o.Store != nil {
		rep, err = compact.Run(ctx, o)
	} else {
		rep, err = service.Compact(ctx, cfg, o)
	}
	rate := 0.0
	if s := rep.Elapsed.Seconds(); s > 0 {
		rate = float64(rep.Rows) / s
	}
	fmt.Fprintf(out, "compacted %d generations: %d rows in %.1f s (%.0f rows/s), %.1f -> %.1f MB; %d replaced files deleted; %d partitions failed (%d files over the memory bound)\n",
		rep.Committed, rep.Rows, rep.Elapsed.Seconds(), rate, mb(rep.BytesIn), mb(rep.BytesOut), rep.Deleted, rep.Failed, rep.TooLarge)
	if err != nil && rep.Failed > 0 && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%d partitions failed; first: %w", rep.Failed, err)
	}
	return err
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }
