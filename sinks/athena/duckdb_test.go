package athena

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// TestParquetMatchesDDL writes one file of each dataset and checks, with
// DuckDB reading them as Athena would (hive partitions), that the columns
// and their types are exactly those of the DDL, plus dt and hour.
func TestParquetMatchesDDL(t *testing.T) {
	server.Require(t, duckdb.Available())
	dir := t.TempDir()
	spec, _ := windows.ParseSpec("1m")
	ew, _ := parquet.NewWindows(parquet.Options{})
	ew.Append(&windows.Window{Spec: &spec, Start: 0, End: 60_000, DeviceID: "d", Metric: "m", Agg: windows.Agg{Count: 1, Sum: 1, Min: 1, Max: 1, Mean: 1}})
	ea, _ := parquet.NewAlerts(parquet.Options{})
	ea.Append(&rules.Alert{ID: "a", Incident: "i", Rule: "r", Kind: "threshold", Severity: "info", Device: "d", State: rules.Firing})
	er, _ := parquet.NewRaw(parquet.Options{})
	er.Append(&schemas.Record{DeviceID: []byte("d"), Seq: 1, Metrics: []schemas.Metric{{Name: []byte("m"), Value: 1}}}, 0, "s", "1")
	for name, enc := range map[string]interface{ Bytes() ([]byte, error) }{"windows": ew, "alerts": ea, "raw": er} {
		data, err := enc.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name, "dt=1970-01-01", "hour=00", "f.parquet")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tables, err := Tables("bucket", "", "2026-01-01")
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name != tb.Dataset+LandingSuffix {
			continue
		}
		res, err := duckdb.Query(fmt.Sprintf("DESCRIBE SELECT * FROM read_parquet('%s/%s/*/*/*.parquet', hive_partitioning = true, hive_types = {'dt': VARCHAR, 'hour': VARCHAR})", dir, tb.Dataset))
		if err != nil {
			t.Fatal(err)
		}
		want := append(append([]Column{}, tb.Columns...), Column{"dt", "string"}, Column{"hour", "string"})
		if len(res.Rows) != len(want) {
			t.Fatalf("%s: DuckDB sees %d columns, the DDL has %d", tb.Name, len(res.Rows), len(want))
		}
		for i, c := range want {
			if res.Rows[i][0] != c.Name || res.Rows[i][1] != duckType[c.Type] {
				t.Errorf("%s column %d: DuckDB %v %v, DDL %s %s", tb.Name, i, res.Rows[i][0], res.Rows[i][1], c.Name, c.Type)
			}
		}
	}
}
