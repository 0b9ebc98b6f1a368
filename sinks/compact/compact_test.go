package compact

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/athena"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/localdir"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

var t0 = time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC).UnixMilli() // two hours across a day boundary

// land writes landing files as the service would: per shard, one file of
// each dataset per minute batch of event time, rows in arrival order.
// batches minutes starting at minute from; seed varies the rows.
func land(t testing.TB, dir *localdir.Dir, prefix string, shards, from, batches, devices int, seed uint64) {
	t.Helper()
	spec, _ := windows.ParseSpec("1m")
	rng := rand.New(rand.NewPCG(seed, 7))
	for sh := 0; sh < shards; sh++ {
		shard := fmt.Sprintf("shardId-%012d", sh)
		for b := from; b < from+batches; b++ {
			start := t0 + int64(b)*60_000
			raw, _ := parquet.NewRaw(parquet.Options{})
			win, _ := parquet.NewWindows(parquet.Options{})
			al, _ := parquet.NewAlerts(parquet.Options{})
			first := uint64(seed*1e9) + uint64(sh*1e6+b*1000)
			for i := 0; i < 40; i++ {
				d := fmt.Sprintf("dev-%03d", rng.IntN(devices))
				raw.Append(&schemas.Record{DeviceID: []byte(d), Time: start + rng.Int64N(60_000), Seq: int64(i), Reading: -1,
					Metrics: []schemas.Metric{{Name: []byte("temp_c"), Value: float64(rng.IntN(400)) / 10}}}, start+60_000, shard, strconv.FormatUint(first+uint64(i), 10))
			}
			for d := 0; d < devices; d += 1 + rng.IntN(3) {
				v := float64(rng.IntN(100))
				win.Append(&windows.Window{Spec: &spec, Start: start, End: start + 60_000, DeviceID: fmt.Sprintf("dev-%03d", d), Metric: "temp_c",
					Agg: windows.Agg{Count: 3, Sum: 3 * v, Min: v - 1, Max: v + 1, Mean: v, First: v, Last: v}})
			}
			if b%7 == 0 {
				al.Append(&rules.Alert{ID: fmt.Sprintf("%016x", first), Incident: "i", Rule: "hot", Kind: "threshold", Severity: "warning",
					Device: fmt.Sprintf("dev-%03d", rng.IntN(devices)), State: rules.Firing, At: start + 30_000, Value: 9})
			}
			last := strconv.FormatUint(first+39, 10)
			for ds, enc := range map[string]interface{ Bytes() ([]byte, error) }{layout.Raw: raw, layout.Windows: win, layout.Alerts: al} {
				data, err := enc.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				if len(data) == 0 {
					continue
				}
				key, err := layout.Key(prefix, ds, start, shard, strconv.FormatUint(first, 10), last, "parquet")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := dir.Put(context.Background(), key, data); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// answers are what the tests compare through the views: every row of
// each dataset (a fingerprint of the columns that matter), and the
// aggregates analysts run. One DuckDB process answers all.
func answers(t testing.TB, root string) string {
	t.Helper()
	views, err := athena.DuckDB(root)
	if err != nil {
		t.Fatal(err)
	}
	res, err := duckdb.Query(views + `SELECT 'raw' AS ds, string_agg(r, '|' ORDER BY r) AS rows FROM (
	  SELECT concat_ws(',', device_id, epoch_ms(ts), seq, metrics['temp_c'], epoch_ms(arrival), shard_id, sequence_number, dt, hour) AS r FROM raw)
	UNION ALL SELECT 'windows', string_agg(r, '|' ORDER BY r) FROM (
	  SELECT concat_ws(',', window_spec, epoch_ms(window_start), device_id, metric, "count", "sum", "min", "max", dt, hour) AS r FROM windows)
	UNION ALL SELECT 'alerts', string_agg(r, '|' ORDER BY r) FROM (
	  SELECT concat_ws(',', alert_id, device_id, state, epoch_ms("at"), "value", dt, hour) AS r FROM alerts)
	UNION ALL SELECT 'per-device', string_agg(r, '|' ORDER BY r) FROM (
	  SELECT concat_ws(',', device_id, count(*), sum("sum"), min("min"), max("max")) AS r FROM windows GROUP BY device_id)
	ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range res.Rows {
		fmt.Fprintf(&b, "%v: %v\n", r[0], r[1])
	}
	return b.String()
}

func files(t testing.TB, root, under string) []string {
	var out []string
	filepath.WalkDir(filepath.Join(root, under), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			out = append(out, strings.TrimPrefix(p, root+"/"))
		}
		return nil
	})
	return out
}

// TestCompactKeepsAnswers: the rows and aggregates seen through the views
// are the same before and after compaction; each closed partition is one
// file sorted by the dataset's key; the open hour is left alone; a second
// run deletes the replaced files and changes nothing else.
func TestCompactKeepsAnswers(t *testing.T) {
	server.Require(t, duckdb.Available())
	root := t.TempDir()
	dir, _ := localdir.New(root)
	land(t, dir, "", 2, 0, 150, 30, 1) // 22:00-00:30: two closed hours, one open
	before := answers(t, root)
	landing := len(files(t, root, "windows"))

	ctx := context.Background()
	before2330 := t0 + 2*3_600_000
	rep, err := Run(ctx, Options{Store: dir, Before: before2330})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Committed != 6 || rep.Deleted != 0 {
		t.Fatalf("committed %d generations, deleted %d: %+v", rep.Committed, rep.Deleted, rep)
	}
	if got := answers(t, root); got != before {
		t.Fatalf("answers changed by compaction: %s", diff(got, before))
	}
	// Deferred deletion: the replaced files are still there, hidden.
	if n := len(files(t, root, "windows")); n != landing {
		t.Fatalf("%d landing windows files after the first run, want %d", n, landing)
	}
	rep, err = Run(ctx, Options{Store: dir, Before: before2330})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Committed != 0 {
		t.Fatalf("second run committed %d generations", rep.Committed)
	}
	if got := answers(t, root); got != before {
		t.Fatalf("answers changed by the second run: %s", diff(got, before))
	}
	// Closed hours: one compacted file each, no landing file; the open
	// hour's 30 minutes of landing files untouched.
	for _, ds := range Datasets() {
		for _, h := range []string{"dt=2026-11-27/hour=22", "dt=2026-11-27/hour=23"} {
			if n := len(files(t, root, ds+"/"+h)); n != 0 {
				t.Errorf("%s %s: %d landing files left", ds, h, n)
			}
			out := files(t, root, layout.CompactedPartition(ds, h))
			if len(out) != 1 {
				t.Fatalf("%s %s: compacted files %v", ds, h, out)
			}
			checkSorted(t, root, ds, out[0])
		}
		if n := len(files(t, root, ds+"/dt=2026-11-28/hour=00")); ds != layout.Alerts && n != 60 {
			t.Errorf("%s: open hour has %d landing files, want 60", ds, n)
		}
	}
}

// checkSorted reads a compacted file back: rows in the dataset's order
// and the sorting columns recorded.
func checkSorted(t *testing.T, root, ds, f string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, f))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := parquet.Decode(context.Background(), ds, data)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	var cmps []func(a, b int32) int
	for _, k := range sortKeys[ds] {
		cmps = append(cmps, comparator(rec.Column(rec.Schema().FieldIndices(k)[0]), k == "sequence_number"))
	}
	for i := int32(1); i < int32(rec.NumRows()); i++ {
		for _, c := range cmps {
			if r := c(i-1, i); r < 0 {
				break
			} else if r > 0 {
				t.Fatalf("%s: row %d sorts before row %d", f, i, i-1)
			}
		}
	}
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if sc := pf.MetaData().RowGroup(0).SortingColumns(); len(sc) != len(sortKeys[ds]) {
		t.Errorf("%s: sorting columns %v", f, sc)
	}
}

// TestLateFilesAndReplays: a landing file that arrives for a compacted
// hour (an offline device's backlog) is visible at once and folded into
// the next generation with the previous outputs; a replayed landing file
// (same name as one compacted) stays hidden and is deleted.
func TestLateFilesAndReplays(t *testing.T) {
	server.Require(t, duckdb.Available())
	root := t.TempDir()
	dir, _ := localdir.New(root)
	ctx := context.Background()
	land(t, dir, "p", 1, 0, 20, 10, 1)
	o := Options{Store: dir, Prefix: "p", Before: t0 + 3_600_000, DeleteNow: true, Datasets: []string{layout.Windows}}
	if _, err := Run(ctx, o); err != nil {
		t.Fatal(err)
	}
	// A backlog arrives for the compacted hour (another seed, other
	// names): visible at once.
	land(t, dir, "p", 1, 30, 2, 10, 2)
	want := answers(t, filepath.Join(root, "p"))
	if backlog := fmt.Sprintf("1m,%d,", t0+30*60_000); !strings.Contains(want, backlog) {
		t.Fatalf("the backlog's windows are not visible")
	}
	// A replay writes one of the compacted landing files again: hidden.
	replayRoot := t.TempDir()
	replay, _ := localdir.New(replayRoot)
	land(t, replay, "p", 1, 0, 1, 10, 1)
	replayed := files(t, replayRoot, "p/windows")[0]
	data, _ := os.ReadFile(filepath.Join(replayRoot, replayed))
	if wrote, err := dir.Put(ctx, replayed, data); !wrote || err != nil {
		t.Fatal(wrote, err)
	}
	if got := answers(t, filepath.Join(root, "p")); got != want {
		t.Fatalf("the replayed file is visible: %s", diff(got, want))
	}
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Committed != 1 || rep.Partitions[0].Generation != 2 || rep.Partitions[0].Sources != 3 {
		t.Fatalf("second run: %+v", rep.Partitions)
	}
	if got := answers(t, filepath.Join(root, "p")); got != want {
		t.Fatalf("after the second generation: %s", diff(got, want))
	}
	if left := files(t, root, "p/windows"); len(left) != 0 {
		t.Fatalf("landing files left: %v", left)
	}
	if out := files(t, root, "p/compacted/windows"); len(out) != 1 || !strings.Contains(out[0], "/000002-") {
		t.Fatalf("compacted files %v", out)
	}
}

// failing is a store that fails every operation from the n-th on: a
// process killed between two of its operations (each is atomic).
type failing struct {
	Store
	n, ops int
}

var errCrash = errors.New("crash")

func (f *failing) step() error {
	f.ops++
	if f.ops >= f.n {
		return errCrash
	}
	return nil
}

func (f *failing) Put(ctx context.Context, k string, d []byte) (bool, error) {
	if err := f.step(); err != nil {
		return false, err
	}
	return f.Store.Put(ctx, k, d)
}
func (f *failing) Get(ctx context.Context, k string) ([]byte, error) {
	if err := f.step(); err != nil {
		return nil, err
	}
	return f.Store.Get(ctx, k)
}
func (f *failing) List(ctx context.Context, p string) ([]string, error) {
	if err := f.step(); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, p)
}
func (f *failing) Delete(ctx context.Context, k string) error {
	if err := f.step(); err != nil {
		return err
	}
	return f.Store.Delete(ctx, k)
}

// TestCrashAtEveryStep stops a run before each of its store operations
// in turn: every time, the views answer as before compaction, and a
// rerun finishes the job with the same files a run without a crash
// writes.
func TestCrashAtEveryStep(t *testing.T) {
	server.Require(t, duckdb.Available())
	for _, c := range []struct {
		name  string
		bound int64 // MaxMemoryBytes
	}{{"whole partitions", 0}, {"in groups", 3 * fileMem(t)}} {
		t.Run(c.name, func(t *testing.T) { crashAtEveryStep(t, c.bound) })
	}
}

// fileMem is the decoded size of the largest landing windows file of
// the crash test's data: a bound of a few of them makes groups.
func fileMem(t *testing.T) int64 {
	root := t.TempDir()
	dir, _ := localdir.New(root)
	land(t, dir, "", 1, 50, 14, 8, 3)
	var most int64
	for _, f := range files(t, root, "windows") {
		in, err := read(context.Background(), Options{Store: dir}, layout.Windows, f)
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, in.mem)
		in.rec.Release()
	}
	return most
}

func crashAtEveryStep(t *testing.T, bound int64) {
	ctx := context.Background()
	template := t.TempDir()
	tdir, _ := localdir.New(template)
	land(t, tdir, "", 1, 50, 14, 8, 3) // 22:50-23:04: two partitions per dataset
	// Each step starts from a copy: encoding it again is slow under -race.
	fresh := func() (string, *localdir.Dir) {
		root := t.TempDir()
		if err := os.CopyFS(root, os.DirFS(template)); err != nil {
			t.Fatal(err)
		}
		dir, _ := localdir.New(root)
		return root, dir
	}
	opts := func(s Store) Options {
		o := Options{Store: s, Before: t0 + 2*3_600_000, DeleteNow: true, Datasets: []string{layout.Windows, layout.Alerts}, MaxMemoryBytes: bound}
		if bound > 0 { // rounds: one partition of windows is enough
			o.Datasets, o.Before = o.Datasets[:1], t0+3_600_000
		}
		return o
	}
	root, dir := fresh()
	want := answers(t, root)
	clean := &failing{Store: dir, n: 1 << 30}
	rep, err := Run(ctx, opts(clean))
	if err != nil {
		t.Fatal(err)
	}
	if bound > 0 && rep.Committed < 3 {
		t.Fatalf("a bound of %d bytes made %d generations, want groups", bound, rep.Committed)
	}
	if got := answers(t, root); got != want {
		t.Fatalf("compaction changed the answers: %s", diff(got, want))
	}
	wantFiles := snapshot(t, root)
	for n := 1; n < clean.ops; n++ {
		root, dir := fresh()
		_, err := Run(ctx, opts(&failing{Store: dir, n: n}))
		if !errors.Is(err, errCrash) {
			t.Fatalf("crash at op %d: %v", n, err)
		}
		if got := answers(t, root); got != want {
			t.Fatalf("after a crash at op %d the views answer otherwise: %s", n, diff(got, want))
		}
		if _, err := Run(ctx, opts(dir)); err != nil {
			t.Fatalf("rerun after a crash at op %d: %v", n, err)
		}
		if got := snapshot(t, root); got != wantFiles {
			t.Fatalf("after a crash at op %d and a rerun the files are\n%s\nwant\n%s", n, got, wantFiles)
		}
	}
	t.Logf("%d generations; crashed at each of %d operations", rep.Committed, clean.ops-1)
}

// snapshot lists a directory's files with their sizes and contents'
// digest.
func snapshot(t *testing.T, root string) string {
	var b strings.Builder
	fs := files(t, root, "")
	slices.Sort(fs)
	for _, f := range fs {
		data, _ := os.ReadFile(filepath.Join(root, f))
		fmt.Fprintf(&b, "%s %d %s\n", f, len(data), digestOf([]string{string(data)}))
	}
	return b.String()
}

// diff shows where two answers first differ.
func diff(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-80)
	return fmt.Sprintf("at byte %d: got …%s…, want …%s…", i, got[from:min(len(got), i+80)], want[from:min(len(want), i+80)])
}

// comparator orders the rows of one sort column, nulls first, comparing
// Arrow values directly: the oracle order's integer keys must agree with.
func comparator(col arrow.Array, decimal bool) func(a, b int32) int {
	nulls := func(a, b int32) (int, bool) {
		na, nb := col.IsNull(int(a)), col.IsNull(int(b))
		if na || nb {
			x, y := 1, 1
			if na {
				x = 0
			}
			if nb {
				y = 0
			}
			return cmp.Compare(x, y), true
		}
		return 0, false
	}
	switch c := col.(type) {
	case *array.String:
		return func(a, b int32) int {
			if r, ok := nulls(a, b); ok {
				return r
			}
			x, y := c.Value(int(a)), c.Value(int(b))
			if decimal && len(x) != len(y) {
				return cmp.Compare(len(x), len(y))
			}
			return strings.Compare(x, y)
		}
	case *array.Timestamp:
		return func(a, b int32) int {
			if r, ok := nulls(a, b); ok {
				return r
			}
			return cmp.Compare(c.Value(int(a)), c.Value(int(b)))
		}
	case *array.Int64:
		return func(a, b int32) int {
			if r, ok := nulls(a, b); ok {
				return r
			}
			return cmp.Compare(c.Value(int(a)), c.Value(int(b)))
		}
	}
	panic(fmt.Sprintf("no comparator for %s", col.DataType()))
}
