package backtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tapline/tapline/sinks/datasets"
)

// ErrNotRaw is wrapped by ReadRawParquet's error for a Parquet file of
// another dataset (windows, alerts).
var ErrNotRaw = errors.New("not the raw dataset")

// ReadRawParquet reads one object of the raw dataset (datasets.Raw) and
// turns each row back into the record its device sent: device_id, ts,
// seq when present, and its metrics in their stored order, values
// printed so they parse back to the same float64. A file of another
// dataset or schema version is an error.
func ReadRawParquet(name string, data []byte) ([]Reading, error) {
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer tbl.Release()
	kv := pf.MetaData().KeyValueMetadata()
	value := func(key string) string {
		if v := kv.FindValue(key); v != nil {
			return *v
		}
		return ""
	}
	if ds := value(datasets.MetaDataset); ds != "raw" {
		return nil, fmt.Errorf("%s: dataset %q: %w", name, ds, ErrNotRaw)
	}
	if v := value(datasets.MetaVersion); v != datasets.Version {
		return nil, fmt.Errorf("%s: schema version %q, this tapline reads %q", name, v, datasets.Version)
	}
	col := func(field string) (arrow.Array, error) {
		idx := tbl.Schema().FieldIndices(field)
		if len(idx) != 1 {
			return nil, fmt.Errorf("%s: no column %s", name, field)
		}
		c := tbl.Column(idx[0]).Data()
		if len(c.Chunks()) != 1 {
			return array.Concatenate(c.Chunks(), memory.DefaultAllocator)
		}
		c.Chunk(0).Retain()
		return c.Chunk(0), nil
	}
	var cols [4]arrow.Array
	for i, f := range []string{"device_id", "ts", "seq", "metrics"} {
		if cols[i], err = col(f); err != nil {
			return nil, err
		}
		defer cols[i].Release()
	}
	dev, ok1 := cols[0].(*array.String)
	ts, ok2 := cols[1].(*array.Timestamp)
	seq, ok3 := cols[2].(*array.Int64)
	metrics, ok4 := cols[3].(*array.Map)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, fmt.Errorf("%s: columns are not the raw dataset's types", name)
	}
	keys, ok1 := metrics.Keys().(*array.String)
	vals, ok2 := metrics.Items().(*array.Float64)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%s: metrics is not a map of string to double", name)
	}
	out := make([]Reading, 0, tbl.NumRows())
	for i := range dev.Len() {
		at := int64(ts.Value(i))
		b := fmt.Appendf(nil, `{"device_id":%s,"ts":%d`, strconv.Quote(dev.Value(i)), at)
		if seq.IsValid(i) {
			b = fmt.Appendf(b, `,"seq":%d`, seq.Value(i))
		}
		b = append(b, `,"metrics":{`...)
		from, to := metrics.ValueOffsets(i)
		for k := from; k < to; k++ {
			if k > from {
				b = append(b, ',')
			}
			b = strconv.AppendQuote(b, keys.Value(int(k)))
			b = append(b, ':')
			b = strconv.AppendFloat(b, vals.Value(int(k)), 'g', -1, 64)
		}
		b = append(b, "}}"...)
		out = append(out, Reading{Device: dev.Value(i), At: at, Data: b})
	}
	return out, nil
}
