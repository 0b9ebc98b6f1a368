// Package athena describes tapline's S3 datasets as Athena (Glue) tables:
// columns generated from the Arrow schemas in package datasets, and
// partition projection over the dt/hour layout of package layout, so new
// partitions are queryable the moment they are written, without MSCK
// REPAIR or a crawler. Tables is exported so the infrastructure code can
// build its Glue tables from the same definitions (the deploy issue).
package athena

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tapline/tapline/sinks/datasets"
	"github.com/tapline/tapline/sinks/layout"
)

// Column is a table column with its Hive/Athena type.
type Column struct {
	Name, Type string
}

// Table is an external Parquet table partitioned by dt (yyyy-MM-dd) and
// hour (00-23), both strings, and for the manifest by dataset first.
//
// Each dataset has three names: {dataset}_landing (the files the service
// writes), {dataset}_compacted (what compaction wrote) and the view
// {dataset} over both (Views), the one analysts query.
type Table struct {
	Name       string
	Dataset    string // raw, windows, alerts or manifest
	Columns    []Column
	Partitions []Column
	Location   string            // s3://bucket/prefix/dataset/
	Projection map[string]string // TBLPROPERTIES for partition projection
}

// Table names beside the datasets'.
const (
	LandingSuffix   = "_landing"
	CompactedSuffix = "_compacted"
	ManifestTable   = "compaction_manifest"
)

var (
	bucketRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	databaseRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,254}$`)
	dateRE     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

// Tables returns the raw, windows and alerts tables for a bucket and key
// prefix. ProjectionStart is the first date partition projection
// enumerates (yyyy-MM-dd).
func Tables(bucket, prefix, projectionStart string) ([]Table, error) {
	if !bucketRE.MatchString(bucket) || strings.Contains(bucket, "..") {
		return nil, fmt.Errorf("athena: %q is not an S3 bucket name", bucket)
	}
	if err := layout.ValidPrefix(prefix); err != nil {
		return nil, err
	}
	if !dateRE.MatchString(projectionStart) {
		return nil, fmt.Errorf("athena: projection start %q is not yyyy-MM-dd", projectionStart)
	}
	root := "s3://" + bucket + "/"
	if prefix != "" {
		root += prefix + "/"
	}
	var out []Table
	for _, name := range []string{layout.Raw, layout.Windows, layout.Alerts} {
		for _, t := range []Table{
			{Name: name + LandingSuffix, Dataset: name, Location: root + name + "/"},
			{Name: name + CompactedSuffix, Dataset: name, Location: root + layout.Compacted + "/" + name + "/"},
		} {
			if err := t.define(projectionStart); err != nil {
				return nil, err
			}
			out = append(out, t)
		}
	}
	m := Table{Name: ManifestTable, Dataset: "manifest", Location: root + layout.Compacted + "/manifests/"}
	if err := m.define(projectionStart); err != nil {
		return nil, err
	}
	m.Partitions = append([]Column{{"dataset", "string"}}, m.Partitions...)
	m.Projection["projection.dataset.type"] = "enum"
	m.Projection["projection.dataset.values"] = "raw,windows,alerts"
	m.Projection["storage.location.template"] = m.Location + "dataset=${dataset}/dt=${dt}/hour=${hour}/"
	return append(out, m), nil
}

// define fills the columns, partitions and projection of a table of
// t.Dataset at t.Location.
func (t *Table) define(projectionStart string) error {
	for _, f := range datasets.ByName[t.Dataset].Fields() {
		ty, err := hiveType(f.Type)
		if err != nil {
			return fmt.Errorf("athena: %s.%s: %w", t.Name, f.Name, err)
		}
		t.Columns = append(t.Columns, Column{f.Name, ty})
	}
	t.Partitions = []Column{{"dt", "string"}, {"hour", "string"}}
	t.Projection = map[string]string{
		"projection.enabled":          "true",
		"projection.dt.type":          "date",
		"projection.dt.format":        "yyyy-MM-dd",
		"projection.dt.range":         projectionStart + ",NOW",
		"projection.dt.interval":      "1",
		"projection.dt.interval.unit": "DAYS",
		"projection.hour.type":        "integer",
		"projection.hour.range":       "0,23",
		"projection.hour.digits":      "2",
		"storage.location.template":   t.Location + "dt=${dt}/hour=${hour}/",
		"parquet.compression":         "ZSTD",
		"tapline.schema_version":      datasets.Version,
	}
	return nil
}

func hiveType(t arrow.DataType) (string, error) {
	switch t.ID() {
	case arrow.STRING:
		return "string", nil
	case arrow.TIMESTAMP:
		return "timestamp", nil
	case arrow.INT64:
		return "bigint", nil
	case arrow.FLOAT64:
		return "double", nil
	case arrow.BINARY:
		return "binary", nil
	case arrow.MAP:
		m := t.(*arrow.MapType)
		k, err := hiveType(m.KeyType())
		if err != nil {
			return "", err
		}
		v, err := hiveType(m.ItemType())
		if err != nil {
			return "", err
		}
		return "map<" + k + "," + v + ">", nil
	}
	return "", fmt.Errorf("no Athena type for %s", t)
}

// DDL renders CREATE EXTERNAL TABLE for the table in database.
func (t Table) DDL(database string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS `%s`.`%s` (\n", database, t.Name)
	for i, c := range t.Columns {
		sep := ","
		if i == len(t.Columns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  `%s` %s%s\n", c.Name, c.Type, sep)
	}
	b.WriteString(")\nPARTITIONED BY (")
	for i, c := range t.Partitions {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "`%s` %s", c.Name, c.Type)
	}
	b.WriteString(")\nSTORED AS PARQUET\n")
	fmt.Fprintf(&b, "LOCATION '%s'\nTBLPROPERTIES (\n", t.Location)
	keys := make([]string, 0, len(t.Projection))
	for k := range t.Projection {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		sep := ","
		if i == len(keys)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  '%s'='%s'%s\n", k, t.Projection[k], sep)
	}
	b.WriteString(");\n")
	return b.String()
}

// Script is everything `tapline athena-ddl` prints: the database, the
// three tables and example queries.
func Script(database, bucket, prefix, projectionStart string) (string, error) {
	if !databaseRE.MatchString(database) {
		return "", fmt.Errorf("athena: database %q must match %s", database, databaseRE)
	}
	tables, err := Tables(bucket, prefix, projectionStart)
	if err != nil {
		return "", err
	}
	views, err := Views(database)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- tapline datasets in s3://%s/%s (schema version %s).\n", bucket, prefix, datasets.Version)
	b.WriteString("-- Partition projection: no MSCK REPAIR TABLE and no crawler needed.\n")
	b.WriteString("-- Query the views raw, windows and alerts: they show each hour's files once,\n")
	b.WriteString("-- before and after tapline compact rewrites it (the *_landing and *_compacted\n")
	b.WriteString("-- tables each hold part of it). Upgrading from tables named raw, windows and\n")
	b.WriteString("-- alerts: DROP TABLE them first (external tables: the data stays).\n\n")
	fmt.Fprintf(&b, "CREATE DATABASE IF NOT EXISTS `%s`;\n\n", database)
	for _, t := range tables {
		b.WriteString(t.DDL(database))
		b.WriteString("\n")
	}
	for _, v := range views {
		b.WriteString(v.DDL(database))
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, `-- Example: one device's temperature, minute by minute, on one day.
SELECT window_start, "mean", "min", "max", "count"
FROM %[1]s.windows
WHERE dt = '2026-11-27' AND window_spec = '1m'
  AND device_id = 'keg-0042' AND metric = 'temp_c'
ORDER BY window_start;

-- Example: exact hourly statistics re-aggregated from 1m windows
-- (count, sum and m2 merge exactly; see windows.Agg.Merge), and the alerts.
SELECT device_id, metric, date_trunc('hour', window_start) AS hour_start,
       sum("count") AS n, sum("sum") / sum("count") AS mean,
       min("min") AS min, max("max") AS max
FROM %[1]s.windows
WHERE dt = '2026-11-27' AND window_spec = '1m'
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

SELECT "at", severity, rule, device_id, metric, state, message
FROM %[1]s.alerts
WHERE dt = '2026-11-27'
ORDER BY "at";
`, database)
	return b.String(), nil
}
