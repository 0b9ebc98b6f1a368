package compact

import (
	"bytes"
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tapline/tapline/sinks/datasets"
	"github.com/tapline/tapline/sinks/parquet"
)

// manifestRow is one row of a manifest (datasets.Manifest).
type manifestRow struct {
	gen         int
	role        string // "source" or "output"
	file        string
	rows, bytes int64
}

// writeManifest encodes a generation's manifest: a Parquet file Athena
// and DuckDB read as the manifest table, and compaction reads back.
func writeManifest(rows []manifestRow) ([]byte, error) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, datasets.Manifest)
	defer b.Release()
	f := b.Fields()
	for _, r := range rows {
		f[0].(*array.Int64Builder).Append(int64(r.gen))
		f[1].(*array.StringBuilder).Append(r.role)
		f[2].(*array.StringBuilder).Append(r.file)
		f[3].(*array.Int64Builder).Append(r.rows)
		f[4].(*array.Int64Builder).Append(r.bytes)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	if _, err := parquet.Encode(&buf, rec, parquet.Options{}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readManifest decodes a manifest: its generation and rows. All rows
// must be of one generation and name files.
func readManifest(ctx context.Context, data []byte) (int, []manifestRow, error) {
	rec, err := parquet.Decode(ctx, "manifest", data)
	if err != nil {
		return 0, nil, err
	}
	defer rec.Release()
	gens := rec.Column(0).(*array.Int64)
	roles := rec.Column(1).(*array.String)
	files := rec.Column(2).(*array.String)
	nrows := rec.Column(3).(*array.Int64)
	nbytes := rec.Column(4).(*array.Int64)
	out := make([]manifestRow, rec.NumRows())
	gen := -1
	for i := range out {
		r := manifestRow{gen: int(gens.Value(i)), role: roles.Value(i), file: files.Value(i), rows: nrows.Value(i), bytes: nbytes.Value(i)}
		if gen >= 0 && r.gen != gen || r.gen <= 0 || (r.role != "source" && r.role != "output") || r.file == "" {
			return 0, nil, fmt.Errorf("row %d: generation %d, role %q, file %q", i, r.gen, r.role, r.file)
		}
		gen = r.gen
		out[i] = r
	}
	if gen < 0 {
		return 0, nil, fmt.Errorf("no rows")
	}
	return gen, out, nil
}
