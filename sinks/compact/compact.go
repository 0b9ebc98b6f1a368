// Package compact rewrites closed hours of tapline's datasets as a few
// large Parquet files sorted for the queries analysts run: raw by
// (device_id, ts), windows by (device_id, metric, window_start), alerts
// by (device_id, at). The service writes one small file per shard and
// batch (about 60 an hour per shard); Athena wants files of 128 MB and
// more, and a query for one device should read the row groups that hold
// it, not every file.
//
// Readers never see both copies, and a crash at any step loses nothing:
// the landing files stay where the service wrote them until a manifest
// (layout.Compacted) commits the generation that replaces them. A
// generation of a partition is written in this order:
//
//  1. its output files, under names made of the generation, a digest of
//     the files it replaces and a part number (put-if-absent; the bytes are
//     a function of the inputs, so a rerun writes the same objects);
//  2. its manifest, one object (put-if-absent): the commit point. Before
//     it the views show the landing files; after it, the outputs;
//  3. (on the next run, or at once with DeleteNow) the deletion of the
//     files it replaced, which the views already hide.
//
// Files that arrive for an hour after its compaction (an offline device's
// backlog, a replay) stay visible beside the outputs; the next run writes
// a new generation that replaces them and the previous outputs together.
package compact

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tapline/tapline/sinks/datasets"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/parquet"
)

// Store is what compaction needs of a bucket: s3sink.Store and
// localdir.Dir are stores. Put writes unless the key exists.
type Store interface {
	Put(ctx context.Context, key string, data []byte) (bool, error)
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, key string) error
}

// Reader is what reading the views' files needs of a bucket.
type Reader interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
}

// Datasets compaction rewrites, and the order each is sorted in. Ties
// keep the order of the files' names and the rows within them, so the
// output is a function of the inputs.
var sortKeys = map[string][]string{
	layout.Raw:     {"device_id", "ts", "shard_id", "sequence_number", "reading"},
	layout.Windows: {"device_id", "metric", "window_start", "window_spec", "window_end"},
	layout.Alerts:  {"device_id", "at", "alert_id", "state", "repeat"},
}

// Datasets lists the datasets compaction rewrites.
func Datasets() []string { return []string{layout.Raw, layout.Windows, layout.Alerts} }

// Options configure a run.
type Options struct {
	Store    Store
	Prefix   string
	Datasets []string // default Datasets()
	// Before: only hours that ended at or before this time (Unix ms of
	// event time) are compacted. Required.
	Before int64
	// TargetBytes is the size compaction aims at for one output file
	// (estimated from the inputs' size). Default 128 MiB.
	TargetBytes int64
	// MaxMemoryBytes bounds the memory a generation's rows take
	// decoded (Arrow buffers; about 8x their Parquet size for raw). A
	// generation is sorted in memory with a copy, so a run's heap peaks
	// at about three times this. A partition larger than the bound is
	// compacted in groups of landing files that fit, a generation each:
	// its hour then has a set of sorted files per group. Default 1 GiB.
	MaxMemoryBytes int64
	// Parquet encodes the outputs. Its RowGroupRows defaults to 8k rows
	// here: the rows are sorted by device, so a query for one device
	// fetches the one or two row groups its rows are in, and a smaller
	// group is fewer bytes of other devices (at 1,000 devices reading
	// every 10 s an hour has 44 row groups; larger fleets get more, never
	// larger ones).
	Parquet parquet.Options
	// DeleteNow deletes the replaced files right after the commit rather
	// than on the next run. Deferring gives a query that read the
	// manifests just before a commit time to list and read the files they
	// name.
	DeleteNow bool
	// Progress, if set, is called after each partition.
	Progress func(Partition)
}

// Partition is what a run did to one partition.
type Partition struct {
	Dataset, Part     string // "windows", "dt=2026-11-27/hour=18"
	Generation        int    // the latest generation committed, 0 if none
	Generations       int    // generations this run committed (more than one: in groups)
	Sources, Outputs  int    // files replaced and written
	Rows              int64
	BytesIn, BytesOut int64
	Deleted           int // replaced or orphaned files deleted
	Visible           int // files a reader lists after the run
	Elapsed           time.Duration
	Err               error
}

// Report sums up a run.
type Report struct {
	Partitions []Partition
	Committed  int // generations committed
	Rows       int64
	BytesIn    int64
	BytesOut   int64
	Deleted    int
	TooLarge   int
	Failed     int
	Elapsed    time.Duration
}

// ErrTooLarge is the error of a single file over MaxMemoryBytes: a file
// the service did not write (its batches are far smaller), left as is.
var ErrTooLarge = errors.New("compact: file larger than the memory bound")

// Run compacts every partition of the datasets whose hour ended by
// o.Before. A partition that fails is reported and the others go on;
// the error is the first failure, or a store error that stops the run.
func Run(ctx context.Context, o Options) (Report, error) {
	start := time.Now()
	if err := layout.ValidPrefix(o.Prefix); err != nil {
		return Report{}, err
	}
	if o.Store == nil || o.Before <= 0 {
		return Report{}, errors.New("compact: Store and Before are required")
	}
	if o.TargetBytes <= 0 {
		o.TargetBytes = 128 << 20
	}
	if o.MaxMemoryBytes <= 0 {
		o.MaxMemoryBytes = 1 << 30
	}
	if o.Parquet.RowGroupRows <= 0 {
		o.Parquet.RowGroupRows = 8 << 10
	}
	if len(o.Datasets) == 0 {
		o.Datasets = Datasets()
	}
	var rep Report
	var first error
	for _, ds := range o.Datasets {
		if _, ok := sortKeys[ds]; !ok {
			return rep, fmt.Errorf("compact: unknown dataset %q", ds)
		}
		parts, err := partitions(ctx, o.Store, o.Prefix, ds)
		if err != nil {
			return rep, err
		}
		for _, part := range parts {
			if end, ok := hourEnd(part); !ok || end > o.Before {
				continue
			}
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			t0 := time.Now()
			p, err := compactPartition(ctx, o, ds, part)
			p.Dataset, p.Part, p.Elapsed, p.Err = ds, part, time.Since(t0), err
			if err != nil {
				rep.Failed++
				if errors.Is(err, ErrTooLarge) {
					rep.TooLarge++
				}
				if first == nil {
					first = err
				}
			}
			rep.Committed += p.Generations
			rep.Rows += p.Rows
			rep.BytesIn += p.BytesIn
			rep.BytesOut += p.BytesOut
			rep.Deleted += p.Deleted
			rep.Partitions = append(rep.Partitions, p)
			if o.Progress != nil {
				o.Progress(p)
			}
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, first
}

// partitions lists the partitions ("dt=…/hour=…") that have landing
// files, compacted files or manifests, in order.
func partitions(ctx context.Context, s Reader, prefix, ds string) ([]string, error) {
	seen := map[string]bool{}
	for _, dir := range []string{ds + "/", layout.Compacted + "/" + ds + "/", layout.ManifestPartition(ds, "")} {
		root := layout.Under(prefix, dir)
		keys, err := s.List(ctx, root)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			rel := strings.TrimPrefix(k, root)
			if i := strings.Index(rel, "/hour="); i > 0 && strings.HasPrefix(rel, "dt=") && len(rel) > i+8 {
				seen[rel[:i+8]] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// hourEnd is the end (Unix ms) of a partition's hour.
func hourEnd(part string) (int64, bool) {
	if len(part) != len("dt=2026-11-27/hour=18") || part[13:19] != "/hour=" {
		return 0, false
	}
	t, err := time.Parse("2006-01-02T15", part[3:13]+"T"+part[19:21])
	if err != nil {
		return 0, false
	}
	return t.Add(time.Hour).UnixMilli(), true
}

// state is a partition as the store holds it.
type state struct {
	landing   []string       // landing files, relative to the prefix
	compacted []string       // files in the compacted directory
	replaced  map[string]int // file → generation that replaced it
	outputs   map[string]int // file → generation that wrote it
	gen       int            // latest committed generation
}

// visible is what a reader sees: the landing files no manifest
// replaced, then the outputs no later manifest replaced.
func (st *state) visible() []string {
	var out []string
	for _, f := range st.landing {
		if _, gone := st.replaced[f]; !gone {
			out = append(out, f)
		}
	}
	for _, f := range st.compacted {
		if _, ok := st.outputs[f]; ok {
			if _, gone := st.replaced[f]; !gone {
				out = append(out, f)
			}
		}
	}
	return out
}

func load(ctx context.Context, s Reader, prefix, ds, part string) (*state, error) {
	st := &state{replaced: map[string]int{}, outputs: map[string]int{}}
	list := func(dir string) ([]string, error) {
		root := layout.Under(prefix, dir) + "/"
		keys, err := s.List(ctx, root)
		var out []string
		for _, k := range keys {
			if strings.HasSuffix(k, ".parquet") && !strings.Contains(strings.TrimPrefix(k, root), "/") {
				out = append(out, strings.TrimPrefix(k, layout.Under(prefix, "")))
			}
		}
		return out, err
	}
	var err error
	if st.landing, err = list(ds + "/" + part); err != nil {
		return nil, err
	}
	if st.compacted, err = list(layout.CompactedPartition(ds, part)); err != nil {
		return nil, err
	}
	manifests, err := list(layout.ManifestPartition(ds, part))
	if err != nil {
		return nil, err
	}
	for _, m := range manifests {
		data, err := s.Get(ctx, layout.Under(prefix, m))
		if err != nil {
			return nil, err
		}
		gen, rows, err := readManifest(ctx, data)
		if err != nil {
			return nil, fmt.Errorf("compact: manifest %s: %w", m, err)
		}
		if name := fmt.Sprintf("%06d.parquet", gen); !strings.HasSuffix(m, "/"+name) {
			return nil, fmt.Errorf("compact: manifest %s holds generation %d", m, gen)
		}
		for _, r := range rows {
			if r.role == "source" {
				st.replaced[r.file] = gen
			} else {
				st.outputs[r.file] = gen
			}
		}
		st.gen = max(st.gen, gen)
	}
	return st, nil
}

// Visible lists the files of a dataset's partition a reader of the views
// sees (relative to the prefix): what the views compute, for tools that
// read the files themselves (tapline backtest).
func Visible(ctx context.Context, s Reader, prefix, dataset, part string) ([]string, error) {
	st, err := load(ctx, s, prefix, dataset, part)
	if err != nil {
		return nil, err
	}
	return st.visible(), nil
}

func compactPartition(ctx context.Context, o Options, ds, part string) (Partition, error) {
	var p Partition
	st, err := load(ctx, o.Store, o.Prefix, ds, part)
	if err != nil {
		return p, err
	}
	p.Generation = st.gen
	// What earlier generations replaced, and outputs no manifest
	// committed whose generation is taken (a crash, or a concurrent run
	// that lost), go now: no reader sees them.
	var garbage []string
	for _, f := range st.landing {
		if _, gone := st.replaced[f]; gone {
			garbage = append(garbage, f)
		}
	}
	for _, f := range st.compacted {
		_, gone := st.replaced[f]
		_, committed := st.outputs[f]
		if gone || !committed && outputGen(f) <= st.gen {
			garbage = append(garbage, f)
		}
	}
	n, err := deleteAll(ctx, o.Store, o.Prefix, garbage)
	p.Deleted += n
	if err != nil {
		return p, err
	}
	// Each round compacts the landing files that fit in memory, in key
	// order, with the previous outputs when everything fits: one sorted
	// set of files for the hour. A partition over the bound takes several
	// rounds, a generation each. A round depends only on what the store
	// holds when it starts, so a rerun after a crash makes the rounds a
	// run without one makes.
	for {
		sources := st.visible()
		var landing, outputs []string
		for _, f := range sources {
			if st.outputs[f] == 0 {
				landing = append(landing, f)
			} else {
				outputs = append(outputs, f)
			}
		}
		if len(landing) == 0 {
			p.Visible = len(sources)
			return p, nil
		}
		if err := round(ctx, o, ds, part, &p, landing, outputs); err != nil {
			return p, err
		}
		if st, err = load(ctx, o.Store, o.Prefix, ds, part); err != nil {
			return p, err
		}
	}
}

// round commits one generation: the landing files that fit in
// MaxMemoryBytes, in order, and the previous outputs if all of them
// fit too.
func round(ctx context.Context, o Options, ds, part string, p *Partition, landing, outputs []string) error {
	var g group
	defer g.release()
	all := true
	for _, f := range landing {
		in, err := read(ctx, o, ds, f)
		if err != nil {
			return err
		}
		if in.mem > o.MaxMemoryBytes {
			in.rec.Release()
			return fmt.Errorf("%w: %s takes %d bytes in memory, over %d", ErrTooLarge, f, in.mem, o.MaxMemoryBytes)
		}
		if g.mem+in.mem > o.MaxMemoryBytes {
			in.rec.Release()
			all = false
			break
		}
		g.add(in)
	}
	if all {
		n := len(g.in)
		for _, f := range outputs {
			in, err := read(ctx, o, ds, f)
			if err != nil {
				return err
			}
			if g.mem+in.mem > o.MaxMemoryBytes {
				in.rec.Release()
				for len(g.in) > n {
					g.pop()
				}
				break
			}
			g.add(in)
		}
	}
	return commit(ctx, o, ds, part, p, &g)
}

// input is one file read for compaction.
type input struct {
	file  string
	rec   arrow.RecordBatch
	bytes int64 // in the store
	mem   int64 // decoded, in memory
}

func read(ctx context.Context, o Options, ds, f string) (input, error) {
	data, err := o.Store.Get(ctx, layout.Under(o.Prefix, f))
	if err != nil {
		return input{}, err
	}
	rec, err := parquet.Decode(ctx, ds, data)
	if err != nil {
		return input{}, fmt.Errorf("compact: %s: %w", f, err)
	}
	return input{file: f, rec: rec, bytes: int64(len(data)), mem: recordBytes(rec)}, nil
}

// recordBytes is the memory a record's buffers hold.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	var walk func(d arrow.ArrayData)
	walk = func(d arrow.ArrayData) {
		for _, b := range d.Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
		for _, c := range d.Children() {
			walk(c)
		}
	}
	for _, c := range rec.Columns() {
		walk(c.Data())
	}
	return n
}

// group is the files of one generation, read.
type group struct {
	in  []input
	mem int64
}

func (g *group) add(in input) { g.in = append(g.in, in); g.mem += in.mem }

func (g *group) pop() {
	last := g.in[len(g.in)-1]
	last.rec.Release()
	g.in = g.in[:len(g.in)-1]
	g.mem -= last.mem
}

func (g *group) release() {
	for len(g.in) > 0 {
		g.pop()
	}
}

// commit writes a group as the partition's next generation (outputs,
// then the manifest), deletes what it replaced if o.DeleteNow, adds to
// p and empties the group.
func commit(ctx context.Context, o Options, ds, part string, p *Partition, g *group) error {
	defer g.release()
	if len(g.in) == 0 {
		return nil
	}
	gen := p.Generation + 1
	var rows []manifestRow
	var files []string
	var recs []arrow.RecordBatch
	var nrows, nbytes int64
	for _, in := range g.in {
		rows = append(rows, manifestRow{gen: gen, role: "source", file: in.file, rows: in.rec.NumRows(), bytes: in.bytes})
		files = append(files, in.file)
		recs = append(recs, in.rec)
		nrows += in.rec.NumRows()
		nbytes += in.bytes
	}
	sorted, err := sortRows(ctx, ds, recs)
	g.release() // the sorted copy is all that is needed now
	if err != nil {
		return err
	}
	defer sorted.Release()
	digest := digestOf(files)
	perFile := max(1, int64(float64(o.TargetBytes)/float64(max(nbytes, 1))*float64(nrows)))
	var outputs int
	var bytesOut int64
	for i, off := 0, int64(0); off < sorted.NumRows(); i, off = i+1, off+perFile {
		chunk := sorted.NewSlice(off, min(off+perFile, sorted.NumRows()))
		var buf bytes.Buffer
		_, err := parquet.Encode(&buf, chunk, o.Parquet, sortKeys[ds]...)
		n := chunk.NumRows()
		chunk.Release()
		if err != nil {
			return err
		}
		f := fmt.Sprintf("%s/%06d-%s-%03d.parquet", layout.CompactedPartition(ds, part), gen, digest, i)
		if _, err := o.Store.Put(ctx, layout.Under(o.Prefix, f), buf.Bytes()); err != nil {
			return err
		}
		rows = append(rows, manifestRow{gen: gen, role: "output", file: f, rows: n, bytes: int64(buf.Len())})
		outputs++
		bytesOut += int64(buf.Len())
	}
	manifest, err := writeManifest(rows)
	if err != nil {
		return err
	}
	key := layout.Under(o.Prefix, fmt.Sprintf("%s/%06d.parquet", layout.ManifestPartition(ds, part), gen))
	wrote, err := o.Store.Put(ctx, key, manifest)
	if err != nil {
		return err
	}
	if !wrote {
		// Another run committed this generation first. Ours is the same
		// commit if it replaced the same files (same bytes); otherwise our
		// outputs are orphans the next run deletes, and nothing of ours
		// may be deleted now.
		if theirs, err := o.Store.Get(ctx, key); err != nil {
			return err
		} else if !bytes.Equal(theirs, manifest) {
			return fmt.Errorf("compact: %s %s: generation %d was committed by another run", ds, part, gen)
		}
	}
	p.Generation = gen
	p.Generations++
	p.Sources += len(files)
	p.Outputs += outputs
	p.Rows += nrows
	p.BytesIn += nbytes
	p.BytesOut += bytesOut
	if o.DeleteNow {
		n, err := deleteAll(ctx, o.Store, o.Prefix, files)
		p.Deleted += n
		if err != nil {
			return err
		}
	}
	return nil
}

// outputGen is the generation in a compacted file's name, or a number
// larger than any generation if the name is not one compaction writes.
func outputGen(f string) int {
	name := f[strings.LastIndexByte(f, '/')+1:]
	g, err := strconv.Atoi(strings.SplitN(name, "-", 2)[0])
	if err != nil || len(name) < 7 || name[6] != '-' {
		return int(^uint(0) >> 1)
	}
	return g
}

// digestOf names the set of files a generation replaces: a rerun after
// a crash replaces the same files and writes the same names, a run that
// replaces others writes other names.
func digestOf(files []string) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func deleteAll(ctx context.Context, s Store, prefix string, files []string) (int, error) {
	for i, f := range files {
		if err := s.Delete(ctx, layout.Under(prefix, f)); err != nil {
			return i, err
		}
	}
	return len(files), nil
}

// sortRows concatenates the inputs and sorts the rows by the dataset's
// sort key, ties in input order.
func sortRows(ctx context.Context, ds string, inputs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	schema := datasets.ByName[ds]
	cols := make([]arrow.Array, schema.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i := range cols {
		chunks := make([]arrow.Array, len(inputs))
		for j, r := range inputs {
			chunks[j] = r.Column(i)
		}
		c, err := array.Concatenate(chunks, memory.DefaultAllocator)
		if err != nil {
			return nil, fmt.Errorf("compact: %s: %w", schema.Field(i).Name, err)
		}
		cols[i] = c
	}
	n := 0
	if len(cols) > 0 {
		n = cols[0].Len()
	}
	idx := order(cols, schema, sortKeys[ds])
	b := array.NewInt32Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(idx, nil)
	indices := b.NewArray()
	defer indices.Release()
	out := make([]arrow.Array, len(cols))
	for i, c := range cols {
		t, err := compute.TakeArray(ctx, c, indices)
		if err != nil {
			for _, o := range out[:i] {
				o.Release()
			}
			return nil, fmt.Errorf("compact: sort %s: %w", schema.Field(i).Name, err)
		}
		out[i] = t
		c.Release() // one column in two copies at a time, not the record
		cols[i] = nil
	}
	rec := array.NewRecordBatch(schema, out, int64(n))
	for _, o := range out {
		o.Release()
	}
	return rec, nil
}

// order returns the row indices sorted by the key columns, ties in
// input order. The first two key columns become an int64 per row: a
// string its rank among the column's distinct values, a timestamp or
// integer its value, null the smallest (the nullable sort columns,
// reading and repeat, are never negative). Sorting rows of integers is
// several times faster than comparing Arrow values through interfaces;
// the rest of the key, compared only on a tie, is compared directly.
func order(cols []arrow.Array, schema *arrow.Schema, keys []string) []int32 {
	n := 0
	if len(cols) > 0 {
		n = cols[0].Len()
	}
	type row struct {
		k0, k1 int64
		i      int32
	}
	rows := make([]row, n)
	var rest []func(a, b int) int
	for j, name := range keys {
		col := cols[schema.FieldIndices(name)[0]]
		if j >= 2 {
			rest = append(rest, compareIn(col, name == "sequence_number"))
			continue
		}
		key := intKey(col)
		for i := range rows {
			if j == 0 {
				rows[i] = row{k0: key(i), i: int32(i)}
			} else {
				rows[i].k1 = key(i)
			}
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		if a.k0 != b.k0 {
			return cmp.Compare(a.k0, b.k0)
		}
		if a.k1 != b.k1 {
			return cmp.Compare(a.k1, b.k1)
		}
		for _, c := range rest {
			if r := c(int(a.i), int(b.i)); r != 0 {
				return r
			}
		}
		return cmp.Compare(a.i, b.i)
	})
	idx := make([]int32, n)
	for i, r := range rows {
		idx[i] = r.i
	}
	return idx
}

// intKey is a column's rows as order's integers.
func intKey(col arrow.Array) func(i int) int64 {
	switch c := col.(type) {
	case *array.String:
		return ranks(c, false)
	case *array.Timestamp:
		return func(i int) int64 { return nullOr(c, i, int64(c.Value(i))) }
	case *array.Int64:
		return func(i int) int64 { return nullOr(c, i, c.Value(i)) }
	}
	panic(fmt.Sprintf("compact: no order for %s", col.DataType()))
}

// compareIn compares two rows of a column, nulls first; decimal orders
// strings of digits as numbers (Kinesis sequence numbers).
func compareIn(col arrow.Array, decimal bool) func(a, b int) int {
	if s, ok := col.(*array.String); ok {
		return func(a, b int) int {
			if r, ok := nulls(col, a, b); ok {
				return r
			}
			x, y := s.Value(a), s.Value(b)
			if decimal && len(x) != len(y) {
				return cmp.Compare(len(x), len(y))
			}
			return strings.Compare(x, y)
		}
	}
	key := intKey(col)
	return func(a, b int) int { return cmp.Compare(key(a), key(b)) }
}

// nulls orders a null before a value; ok is false when neither is null.
func nulls(col arrow.Array, a, b int) (r int, ok bool) {
	na, nb := col.IsNull(a), col.IsNull(b)
	if !na && !nb {
		return 0, false
	}
	switch {
	case na && nb:
		return 0, true
	case na:
		return -1, true
	}
	return 1, true
}

func nullOr(c arrow.Array, i int, v int64) int64 {
	if c.IsNull(i) {
		return math.MinInt64
	}
	return v
}

// ranks maps each row of a string column to its value's rank among the
// column's distinct values, null lowest; decimal orders strings of
// digits as numbers.
func ranks(c *array.String, decimal bool) func(i int) int64 {
	id := make(map[string]int32)
	var distinct []string
	row := make([]int32, c.Len())
	for i := range row {
		if c.IsNull(i) {
			row[i] = -1
			continue
		}
		v := c.Value(i)
		r, ok := id[v]
		if !ok {
			r = int32(len(distinct))
			id[v] = r
			distinct = append(distinct, v)
		}
		row[i] = r
	}
	byValue := make([]int32, len(distinct))
	for i := range byValue {
		byValue[i] = int32(i)
	}
	slices.SortFunc(byValue, func(a, b int32) int {
		x, y := distinct[a], distinct[b]
		if decimal && len(x) != len(y) {
			return cmp.Compare(len(x), len(y))
		}
		return strings.Compare(x, y)
	})
	rank := make([]int64, len(distinct))
	for r, d := range byValue {
		rank[d] = int64(r)
	}
	return func(i int) int64 {
		if row[i] < 0 {
			return math.MinInt64
		}
		return rank[row[i]]
	}
}

// Status is a partition's file counts: how many small files a reader
// lists now, the number compaction brings down.
type Status struct {
	Dataset, Part      string
	Landing, Compacted int // files in each location, replaced ones included
	Visible            int // files a reader of the views reads
}

// Statuses reports every partition of the datasets.
func Statuses(ctx context.Context, s Store, prefix string, datasets []string) ([]Status, error) {
	var out []Status
	for _, ds := range datasets {
		if _, ok := sortKeys[ds]; !ok {
			return nil, fmt.Errorf("compact: unknown dataset %q", ds)
		}
		parts, err := partitions(ctx, s, prefix, ds)
		if err != nil {
			return nil, err
		}
		for _, part := range parts {
			st, err := load(ctx, s, prefix, ds, part)
			if err != nil {
				return nil, err
			}
			out = append(out, Status{Dataset: ds, Part: part, Landing: len(st.landing), Compacted: len(st.compacted), Visible: len(st.visible())})
		}
	}
	return out, nil
}
