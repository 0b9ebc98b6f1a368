package demo

import (
	"fmt"
	"path/filepath"
)

// QuerySQL is a DuckDB query over the windows the demo wrote under root.
func QuerySQL(root string) string {
	return fmt.Sprintf("SELECT device_id, metric, count(*) AS windows, round(avg(mean), 2) AS mean FROM read_parquet('%s/windows/*/*/*.parquet', hive_partitioning = true) WHERE window_spec = '1m' GROUP BY ALL ORDER BY ALL LIMIT 12", filepath.Clean(root))
}

// query is QuerySQL as a duckdb command line.
func query(root string) string { return `duckdb -c "` + QuerySQL(root) + `"` }
