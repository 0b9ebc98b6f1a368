package parquet

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows"
)

// TestDuckDBAgreesWithEngine writes windows of a real processor as
// hive-partitioned Parquet, queries them with DuckDB (the Athena
// stand-in) and compares every window's count, sum, min and max with
// what the engine emitted, exactly.
func TestDuckDBAgreesWithEngine(t *testing.T) {
	server.Require(t, duckdb.Available())
	dir := t.TempDir()
	type key struct {
		spec, device, metric string
		start                int64
	}
	type agg struct {
		count         int64
		sum, min, max float64
	}
	oracle := map[key]agg{}
	enc := map[int64]*Windows{} // by event hour
	one, _ := windows.ParseSpec("1m")
	hop, _ := windows.ParseSpec("5m/1m")
	p, err := pipeline.NewProcessor(pipeline.Options{
		Windows:     windows.Options{Specs: []windows.Spec{one, hop}, AllowedLateness: 5 * time.Second},
		DeadLetters: nopDL{},
		OnWindow: func(w *windows.Window) {
			oracle[key{w.Spec.Name, w.DeviceID, w.Metric, w.Start}] = agg{w.Count, w.Sum, w.Min, w.Max}
			h := w.Start - w.Start%3_600_000
			if enc[h] == nil {
				enc[h], _ = NewWindows(Options{})
			}
			enc[h].Append(w)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 27, 22, 50, 0, 0, time.UTC).UnixMilli() // spans an hour and a day boundary
	for i := 0; i < 30_000; i++ {
		ts := base + int64(i)*150
		data := fmt.Appendf(nil, `{"device_id":"dev-%02d","ts":%d,"metrics":{"temp_c":%d.%d,"kpa":%d}}`, i%17, ts, i%9, i%10, 90+i%23)
		p.Process(data, strconv.Itoa(i), 0)
	}
	p.Flush()
	for h, e := range enc {
		k, err := layout.Key("", layout.Windows, h, "shardId-000000000000", "0", "29999", "parquet")
		if err != nil {
			t.Fatal(err)
		}
		data, err := e.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(k))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := duckdb.Query(fmt.Sprintf(`SELECT window_spec, device_id, metric, epoch_ms(window_start) AS start, "count", "sum", "min", "max", dt, hour
		FROM read_parquet('%s/windows/*/*/*.parquet', hive_partitioning = true)`, dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != len(oracle) || len(oracle) < 1000 {
		t.Fatalf("DuckDB read %d windows, the engine emitted %d", len(res.Rows), len(oracle))
	}
	num := func(v any) float64 {
		switch x := v.(type) {
		case float64:
			return x
		case string:
			f, _ := strconv.ParseFloat(x, 64)
			return f
		}
		t.Fatalf("unexpected value %#v", v)
		return 0
	}
	for _, r := range res.Rows {
		k := key{r[0].(string), r[1].(string), r[2].(string), int64(num(r[3]))}
		want, ok := oracle[k]
		if !ok {
			t.Fatalf("DuckDB has a window the engine did not emit: %+v", k)
		}
		got := agg{int64(num(r[4])), num(r[5]), num(r[6]), num(r[7])}
		if got != want {
			t.Fatalf("window %+v: DuckDB %+v, engine %+v", k, got, want)
		}
		// the partition columns hold the window start's UTC date and hour
		st := time.UnixMilli(k.start).UTC()
		if r[8] != st.Format("2006-01-02") || fmt.Sprint(r[9]) != fmt.Sprint(st.Hour()) && fmt.Sprint(r[9]) != st.Format("15") {
			t.Fatalf("window %+v in partition dt=%v hour=%v", k, r[8], r[9])
		}
	}
}
