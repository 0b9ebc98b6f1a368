// Package consumertest checks a consumer's output against an oracle: the
// same pipeline run in process over the records the stream holds.
package consumertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows/rules"
)

// Objects is a set of stored objects by key.
type Objects map[string][]byte

// Result is what the oracle wrote.
type Result struct {
	Objects Objects
	Alerts  []rules.Alert // every alert, as the alerts dataset has them
	// Notifications: what went to SNS (alerts not suppressed, grouped by
	// the route).
	Notifications []rules.Alert
	// Acked is each shard's last acknowledged sequence number: where the
	// consumer's checkpoint must end up.
	Acked map[string]string
}

// memStore is a put-if-absent map.
type memStore struct {
	mu sync.Mutex
	o  Objects
}

func (m *memStore) Put(_ context.Context, key string, data []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.o[key]; ok {
		return false, nil
	}
	m.o[key] = data
	return true, nil
}

// Oracle reads every shard of stream from TRIM_HORIZON to its current end
// and runs the records through the pipeline and batch writer configured
// by po, bo and prefix, cutting batches where the writer says, as the
// consumer does. It returns the objects written and the alerts, which are
// what a consumer must have written by the last record of each shard when
// no wall-clock cut (idle advance, shutdown) happened. Closed shards are
// flushed to the end, as the consumer does before SHARD_END. The
// decisions a consumer recorded (journal.Decisions: cuts, reloads) are
// made at the same records, so the objects equal the consumer's even when
// it cut batches for the wall clock or handed leases off.
func Oracle(ctx context.Context, k *kinesis.Client, stream, prefix string, po pipeline.Options, bo batch.Options, recorded ...journal.Recorded) (*Result, error) {
	var reloads []journal.Reload
	cuts := map[string]map[string]bool{}
	for _, r := range recorded {
		reloads = append(reloads, r.Reloads...)
		for shard, seqs := range r.Cuts {
			if cuts[shard] == nil {
				cuts[shard] = map[string]bool{}
			}
			for seq := range seqs {
				cuts[shard][seq] = true
			}
		}
	}
	store := &memStore{o: Objects{}}
	res := &Result{Objects: store.o, Acked: map[string]string{}}
	shards, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return nil, err
	}
	for _, sh := range shards.Shards {
		id := aws.ToString(sh.ShardId)
		bo := bo
		bo.Shard, bo.Prefix = id, prefix
		w, err := batch.New(store, bo)
		if err != nil {
			return nil, err
		}
		po := po
		po.Shard, po.DeadLetters, po.OnRecord, po.OnWindow = id, w, w.Record, w.Window
		po.OnAlert = func(a *rules.Alert) { w.Alert(a); res.Alerts = append(res.Alerts, *a) }
		po.OnNotify = func(a *rules.Alert) { res.Notifications = append(res.Notifications, *a) }
		p, err := pipeline.NewProcessor(po)
		if err != nil {
			return nil, err
		}
		it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return nil, err
		}
		reload := func(after string) error {
			for _, r := range reloads {
				if r.Shard != id || r.After != after {
					continue
				}
				if _, err := w.Flush(ctx, p.Watermark()); err != nil { // the journal's cut
					return err
				}
				if after != "" {
					res.Acked[id] = after
				}
				if err := p.Reload(r.Rules); err != nil {
					return err
				}
				if _, err := w.Flush(ctx, p.Watermark()); err != nil {
					return err
				}
			}
			return nil
		}
		if err := reload(""); err != nil {
			return nil, err
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10_000)})
			if err != nil {
				return nil, err
			}
			for _, r := range out.Records {
				seq := aws.ToString(r.SequenceNumber)
				if err := p.Process(r.Data, seq, r.ApproximateArrivalTimestamp.UnixMilli()); err != nil {
					return nil, err
				}
				if w.Due(p.Watermark()) {
					last, err := w.Flush(ctx, p.Watermark())
					if err != nil {
						return nil, err
					}
					res.Acked[id] = last
				}
				if cuts[id][seq] { // a recorded cut
					if _, err := w.Flush(ctx, p.Watermark()); err != nil {
						return nil, err
					}
					res.Acked[id] = seq
				}
				if err := reload(seq); err != nil {
					return nil, err
				}
			}
			if out.NextShardIterator == nil {
				// A closed shard (split or merged): the consumer flushes
				// everything and checkpoints SHARD_END.
				p.Flush()
				if _, err := w.Flush(ctx, p.Watermark()); err != nil {
					return nil, err
				}
				res.Acked[id] = "SHARD_END"
				break
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return res, nil
}

// Data returns the objects of the datasets under prefix, without
// tapline's own bookkeeping (shard state, the first-start marker).
func (o Objects) Data(prefix string) Objects {
	d := Objects{}
	for k, v := range o {
		if !layout.Internal(prefix, k) {
			d[k] = v
		}
	}
	return d
}

// Keys returns the sorted keys.
func (o Objects) Keys() []string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WriteDir writes the objects under dir, keys as paths.
func (o Objects) WriteDir(dir string) error {
	for k, v := range o {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, v, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// SameRows compares the rows of one Parquet dataset (raw, windows,
// alerts) in two directories with DuckDB, as multisets: it returns the
// row counts and a description of the first differences, empty when
// every row of each side is in the other as often.
func SameRows(dirA, dirB, prefix, dataset string) (n int, diff string, err error) {
	glob := func(dir string) string {
		return filepath.ToSlash(filepath.Join(dir, prefix, dataset)) + "/**/*.parquet"
	}
	q := func(a, b string) string {
		return fmt.Sprintf("SELECT * EXCLUDE (dt, hour) FROM read_parquet('%s', hive_partitioning = true) EXCEPT ALL SELECT * EXCLUDE (dt, hour) FROM read_parquet('%s', hive_partitioning = true) LIMIT 5", a, b)
	}
	if n, err = count(fmt.Sprintf("SELECT count(*) AS n FROM read_parquet('%s')", glob(dirA))); err != nil {
		return 0, "", err
	}
	var b strings.Builder
	for _, pair := range [][2]string{{dirA, dirB}, {dirB, dirA}} {
		res, err := duckdb.Query(q(glob(pair[0]), glob(pair[1])))
		if err != nil {
			return 0, "", err
		}
		for _, r := range res.Rows {
			fmt.Fprintf(&b, "only in %s: %v\n", pair[0], r)
		}
	}
	return n, b.String(), nil
}

// count runs a query of one row and one integer column. A value that is
// not an integer is an error, never a 0 that would pass "0 lost".
func count(sql string) (int, error) {
	res, err := duckdb.Query(sql)
	if err != nil {
		return 0, err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return 0, fmt.Errorf("consumertest: %s: %d rows, want one count", sql, len(res.Rows))
	}
	switch v := res.Rows[0][0].(type) {
	case string: // BIGINT, as DuckDB's JSON rows give it
		n, err := strconv.Atoi(v)
		if err == nil {
			return n, nil
		}
	case float64:
		if v == float64(int(v)) {
			return int(v), nil
		}
	}
	return 0, fmt.Errorf("consumertest: %s: count %#v is not an integer", sql, res.Rows[0][0])
}

// LastSequences returns the sequence number of each shard's last record.
func LastSequences(ctx context.Context, k *kinesis.Client, stream string) (map[string]string, error) {
	shards, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		return nil, err
	}
	last := map[string]string{}
	for _, sh := range shards.Shards {
		it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return nil, err
		}
		for iter := it.ShardIterator; iter != nil; {
			out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				return nil, err
			}
			if n := len(out.Records); n > 0 {
				last[aws.ToString(sh.ShardId)] = aws.ToString(out.Records[n-1].SequenceNumber)
			} else if aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return last, nil
}

// Report is what Verify found: the Jepsen-style figures of a fault test.
type Report struct {
	Records          int // raw rows the oracle wrote (records acknowledged)
	Lost             int // of those, missing from the checked objects
	Duplicates       int // raw rows present more than once
	WindowMismatches int // window rows in one side and not the other (as multisets)
	AlertMismatches  int // alert rows likewise
}

// OK reports whether nothing was lost, duplicated or different.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicates == 0 && r.WindowMismatches == 0 && r.AlertMismatches == 0
}

func (r Report) String() string {
	return fmt.Sprintf("%d records: %d lost, %d duplicate rows, %d window and %d alert rows mismatched",
		r.Records, r.Lost, r.Duplicates, r.WindowMismatches, r.AlertMismatches)
}

// Verify compares the objects in dir got with the oracle's in dir want,
// in DuckDB: raw records by (shard, sequence number), windows and alerts
// as multisets of whole rows.
func Verify(got, want, prefix string) (Report, error) {
	var r Report
	glob := func(dir, ds string) string { return filepath.ToSlash(filepath.Join(dir, prefix, ds)) + "/**/*.parquet" }
	has := func(dir, ds string) bool { _, err := os.Stat(filepath.Join(dir, prefix, ds)); return err == nil }
	var err error
	if !has(want, "raw") {
		return r, fmt.Errorf("consumertest: the oracle wrote no raw records")
	}
	if r.Records, err = count(fmt.Sprintf("SELECT count(*) FROM read_parquet('%s')", glob(want, "raw"))); err != nil {
		return r, err
	}
	if !has(got, "raw") {
		r.Lost = r.Records
		return r, nil
	}
	if r.Lost, err = count(fmt.Sprintf("SELECT count(*) FROM (SELECT shard_id, sequence_number, reading FROM read_parquet('%s') EXCEPT SELECT shard_id, sequence_number, reading FROM read_parquet('%s'))", glob(want, "raw"), glob(got, "raw"))); err != nil {
		return r, err
	}
	if r.Duplicates, err = count(fmt.Sprintf("SELECT count(*) - count(DISTINCT (shard_id, sequence_number, reading)) FROM read_parquet('%s')", glob(got, "raw"))); err != nil {
		return r, err
	}
	for _, ds := range []struct {
		name string
		n    *int
	}{{"windows", &r.WindowMismatches}, {"alerts", &r.AlertMismatches}} {
		g, w := has(got, ds.name), has(want, ds.name)
		switch {
		case !g && !w:
			continue
		case !g || !w:
			*ds.n = -1 // one side has the dataset, the other none
			continue
		}
		q := "SELECT count(*) FROM (SELECT * EXCLUDE (dt, hour) FROM read_parquet('%s', hive_partitioning = true) EXCEPT ALL SELECT * EXCLUDE (dt, hour) FROM read_parquet('%s', hive_partitioning = true))"
		a, err := count(fmt.Sprintf(q, glob(got, ds.name), glob(want, ds.name)))
		if err != nil {
			return r, err
		}
		b, err := count(fmt.Sprintf(q, glob(want, ds.name), glob(got, ds.name)))
		if err != nil {
			return r, err
		}
		*ds.n = a + b
	}
	return r, nil
}
