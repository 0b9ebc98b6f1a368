package demo

import (
	"fmt"
	"path/filepath"
)

// query is a DuckDB command that reads the windows the demo wrote.
func query(root string) string {
	return fmt.Sprintf(`duckdb -c "SELECT device_id, metric, count(*) AS windows, round(avg(mean), 2) AS mean FROM read_parquet('%s/windows/*/*/*.parquet', hive_partitioning = true) WHERE window_spec = '1m' GROUP BY ALL ORDER BY ALL LIMIT 12"`, filepath.Clean(root))
}
