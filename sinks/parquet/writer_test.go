package parquet

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
)

// TestColumnWriterSameBytes writes random raw and windows rows (nulls,
// rows without metrics, one to many row groups, empty files) with the
// columnWriter and with pqarrow.FileWriter, which it replaces for those
// datasets: the files must be the same bytes. TestPinnedBytes holds both
// to what the encoders wrote before; this holds them to each other on
// shapes the pinned rows do not have.
func TestColumnWriterSameBytes(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		rows := rng.IntN(1500)
		o := Options{RowGroupRows: []int64{0, 13, 250}[rng.IntN(3)]}
		switch seed % 10 {
		case 0:
			rows = 0
		case 1:
			rows, o.RowGroupRows = rng.IntN(40), 1
		}
		if seed%3 == 0 {
			o.Compression = Snappy
		}
		devices := 1 + rng.IntN(50)

		er, err := NewRaw(o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			r := &schemas.Record{DeviceID: fmt.Appendf(nil, "d-%d", rng.IntN(devices)), Time: 1_764_000_000_000 + int64(i)*97, Seq: -1, Reading: -1}
			if rng.IntN(3) == 0 {
				r.Seq = int64(i)
			}
			if rng.IntN(4) == 0 {
				r.Reading = rng.IntN(10)
			}
			for k := range rng.IntN(5) {
				r.Metrics = append(r.Metrics, schemas.Metric{Name: fmt.Appendf(nil, "m%d", k+rng.IntN(3)), Value: rng.NormFloat64()})
			}
			er.Append(r, r.Time+5, fmt.Sprint("shardId-", rng.IntN(3)), fmt.Sprint(1e9+float64(i)))
		}
		same(t, fmt.Sprint("raw seed ", seed), &er.batchFile, er.columns(), o)

		ew, err := NewWindows(o)
		if err != nil {
			t.Fatal(err)
		}
		spec, _ := windows.ParseSpec("1m")
		sketch, err := ddsketch.NewDefaultDDSketch(0.01)
		if err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			w := windows.Window{Spec: &spec, Start: 1_764_000_000_000 + int64(i/100)*60_000, DeviceID: fmt.Sprint("d-", rng.IntN(devices)),
				Metric: fmt.Sprint("m", rng.IntN(4)), Agg: windows.Agg{Count: 1 + rng.Int64N(9), Sum: rng.Float64(), Min: -1, Max: 1, Mean: rng.Float64(), M2: rng.Float64()}}
			w.End, w.FirstTS, w.LastTS = w.Start+60_000, w.Start, w.Start+59_000
			if rng.IntN(2) == 0 {
				w.Sketch = sketch
				for range 1 + rng.IntN(5) {
					w.Sketch.Add(rng.ExpFloat64())
				}
			}
			ew.Append(&w)
		}
		same(t, fmt.Sprint("windows seed ", seed), &ew.batchFile, ew.columns(), o)
	}
}

// same writes cols through write and through pqarrow.FileWriter and
// fails unless the bytes match.
func same(t *testing.T, name string, f *batchFile, cols []arrow.Array, o Options) {
	t.Helper()
	rec := array.NewRecordBatch(f.schema, cols, int64(cols[0].Len()))
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	sameRecord(t, fmt.Sprintf("%s (%d rows, options %+v)", name, rec.NumRows(), o), f.props, rec)
}

func sameRecord(t *testing.T, name string, props *pq.WriterProperties, rec arrow.RecordBatch) {
	t.Helper()
	if !directly(rec.Schema()) {
		t.Fatalf("%s: the columnWriter does not write this schema", name)
	}
	var got, want bytes.Buffer
	if _, err := write(&got, rec.Schema(), props, rec, nil); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fw, err := pqarrow.NewFileWriter(rec.Schema(), &want, props, pqarrow.NewArrowWriterProperties())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeRowGroups(fw, rec, props.MaxRowGroupLength(), nil); err != nil {
		t.Fatalf("%s: pqarrow: %v", name, err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%s: %d bytes, pqarrow wrote %d", name, got.Len(), want.Len())
	}
}

// TestColumnWriterMaps: maps whose values may be null and maps whose
// values may not, with and without nulls, rows without entries.
func TestColumnWriterMaps(t *testing.T) {
	for _, nullable := range []bool{true, false} {
		mt := arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int64)
		mt.SetItemNullable(nullable)
		schema := arrow.NewSchema([]arrow.Field{{Name: "m", Type: mt}, {Name: "n", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		mb := b.Field(0).(*array.MapBuilder)
		kb, ib := mb.KeyBuilder().(*array.StringBuilder), mb.ItemBuilder().(*array.Int64Builder)
		for i := range 200 {
			mb.Append(true)
			for j := range i % 4 {
				kb.Append(fmt.Sprint("k", j))
				if nullable && (i+j)%5 == 0 {
					ib.AppendNull()
				} else {
					ib.Append(int64(i * j))
				}
			}
			if i%3 == 0 {
				b.Field(1).(*array.Int64Builder).AppendNull()
			} else {
				b.Field(1).(*array.Int64Builder).Append(int64(i))
			}
		}
		rec := b.NewRecordBatch()
		b.Release()
		for _, rows := range []int64{1 << 20, 7} {
			props := pq.NewWriterProperties(pq.WithStats(true), pq.WithMaxRowGroupLength(rows))
			sameRecord(t, fmt.Sprintf("values nullable %v, row groups of %d", nullable, rows), props, rec)
		}
		rec.Release()
	}
}

// TestDirectly: the alerts dataset's optional maps are left to pqarrow.
func TestDirectly(t *testing.T) {
	for _, c := range []struct {
		f    arrow.Field
		want bool
	}{
		{arrow.Field{Name: "m", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64)}, true},
		{arrow.Field{Name: "m", Type: arrow.MapOf(arrow.BinaryTypes.String, arrow.PrimitiveTypes.Float64), Nullable: true}, false},
		{arrow.Field{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)}, false},
		{arrow.Field{Name: "d", Type: dictType, Nullable: true}, true},
	} {
		if got := directly(arrow.NewSchema([]arrow.Field{c.f}, nil)); got != c.want {
			t.Errorf("%s: directly %v, want %v", c.f, got, c.want)
		}
	}
}

// TestDictColAcrossFiles: a dictionary column that remembers values
// across files still gives each file the dictionary of its own rows in
// order of first appearance, also past keptValues, and keeps no view of
// a []byte it was given.
func TestDictColAcrossFiles(t *testing.T) {
	d := newDict()
	rng := rand.New(rand.NewPCG(1, 2))
	scratch := make([]byte, 0, 32)
	for file := range 12 {
		rows := 1 + rng.IntN(2000)
		pool := 1 + rng.IntN(300)
		base := file * 50
		if file == 6 {
			rows, pool = keptValues+500, keptValues+500 // past the bound
		}
		var want []string
		for i := range rows {
			v := fmt.Sprint("v-", base+rng.IntN(pool))
			if file == 6 {
				v = fmt.Sprint("w-", i)
			}
			if i%2 == 0 {
				scratch = append(scratch[:0], v...)
				addDict(&d, scratch)
				copy(scratch, "xxxxxxxx") // the caller's buffer moves on
			} else {
				addDict(&d, v)
			}
			want = append(want, v)
		}
		a := d.array().(*array.Dictionary)
		dict := a.Dictionary().(*array.String)
		seen := map[string]bool{}
		var order []string
		for _, v := range want {
			if !seen[v] {
				seen[v] = true
				order = append(order, v)
			}
		}
		if dict.Len() != len(order) {
			t.Fatalf("file %d: dictionary of %d values, rows use %d", file, dict.Len(), len(order))
		}
		for i, v := range order {
			if dict.Value(i) != v {
				t.Fatalf("file %d: dictionary value %d is %q, want %q", file, i, dict.Value(i), v)
			}
		}
		for i, v := range want {
			if got := dict.Value(a.GetValueIndex(i)); got != v {
				t.Fatalf("file %d row %d: %q, want %q", file, i, got, v)
			}
		}
		a.Release()
		d.reset(maxReserve)
		if file == 6 && len(d.known) != 0 {
			t.Fatalf("after %d values, %d kept", keptValues+500, len(d.known))
		}
	}
}
