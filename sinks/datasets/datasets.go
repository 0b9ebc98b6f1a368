// Package datasets owns the Arrow schemas of the datasets tapline writes
// to S3 (raw telemetry, window aggregates, alerts): what the Parquet
// encoder writes, what the Athena tables declare. It holds no encoder,
// so the table definitions (and the CDK app) need only Arrow's types.
package datasets

import "github.com/apache/arrow-go/v18/arrow"

// Version is the version of the three datasets' schemas below. It
// is stored in every file's metadata; a change that is not purely
// additive (new nullable columns at the end) bumps it.
const Version = "1"

// Metadata keys on every dataset schema.
const (
	MetaDataset = "tapline.dataset"
	MetaVersion = "tapline.schema_version"
)

// Types Athena (Trino) reads without surprises: timestamps in
// milliseconds marked UTC (never nanoseconds or INT96), signed integers
// only, UTF-8 strings, and the standard MAP layout.
var (
	tsMs = arrow.FixedWidthTypes.Timestamp_ms // TimestampType{Unit: Millisecond, TimeZone: "UTC"}
	str  = arrow.BinaryTypes.String
	f64  = arrow.PrimitiveTypes.Float64
	i64  = arrow.PrimitiveTypes.Int64
	bin  = arrow.BinaryTypes.Binary
)

func schema(dataset string, fields ...arrow.Field) *arrow.Schema {
	md := arrow.NewMetadata([]string{MetaDataset, MetaVersion}, []string{dataset, Version})
	return arrow.NewSchema(fields, &md)
}

// Raw is the raw telemetry dataset: one row per accepted record,
// its metrics as a MAP so a query reads metrics['temp_c'] and new metrics
// need no schema change. Partitioned by event time (dt, hour) in the S3
// key, not in the file.
var Raw = schema("raw",
	arrow.Field{Name: "device_id", Type: str},
	arrow.Field{Name: "ts", Type: tsMs},
	arrow.Field{Name: "seq", Type: i64, Nullable: true},
	arrow.Field{Name: "metrics", Type: arrow.MapOf(str, f64)},
	arrow.Field{Name: "arrival", Type: tsMs},
	arrow.Field{Name: "shard_id", Type: str},
	arrow.Field{Name: "sequence_number", Type: str},
	// reading: the row's index in a batched message (several readings in
	// one Kinesis record); null for a message of one reading. With
	// shard_id and sequence_number it identifies the row.
	arrow.Field{Name: "reading", Type: i64, Nullable: true},
)

// Windows is the window aggregates dataset: one row per closed
// window of one (device, metric). count, sum, mean and m2 are kept so
// analysts can re-aggregate windows exactly (Chan et al.'s merge), and the
// DDSketch (protobuf) so quantiles can be merged too.
var Windows = schema("windows",
	arrow.Field{Name: "window_spec", Type: str},
	arrow.Field{Name: "window_start", Type: tsMs},
	arrow.Field{Name: "window_end", Type: tsMs},
	arrow.Field{Name: "device_id", Type: str},
	arrow.Field{Name: "metric", Type: str},
	arrow.Field{Name: "count", Type: i64},
	arrow.Field{Name: "sum", Type: f64},
	arrow.Field{Name: "min", Type: f64},
	arrow.Field{Name: "max", Type: f64},
	arrow.Field{Name: "mean", Type: f64},
	arrow.Field{Name: "stddev", Type: f64},
	arrow.Field{Name: "m2", Type: f64},
	arrow.Field{Name: "first", Type: f64},
	arrow.Field{Name: "first_ts", Type: tsMs},
	arrow.Field{Name: "last", Type: f64},
	arrow.Field{Name: "last_ts", Type: tsMs},
	arrow.Field{Name: "p50", Type: f64, Nullable: true},
	arrow.Field{Name: "p90", Type: f64, Nullable: true},
	arrow.Field{Name: "p99", Type: f64, Nullable: true},
	arrow.Field{Name: "sketch", Type: bin, Nullable: true},
)

// Alerts is the alerts dataset: one row per FIRING or RESOLVED
// notification. reason says why a RESOLVED came without its condition
// clearing (rule_changed, rule_removed); attribution is each metric's
// share of a multi-metric forest's score; summary, runbook_url and labels
// come from the rule.
var Alerts = schema("alerts",
	arrow.Field{Name: "alert_id", Type: str},
	arrow.Field{Name: "incident_id", Type: str},
	arrow.Field{Name: "rule", Type: str},
	arrow.Field{Name: "kind", Type: str},
	arrow.Field{Name: "severity", Type: str},
	arrow.Field{Name: "device_id", Type: str},
	arrow.Field{Name: "metric", Type: str, Nullable: true},
	arrow.Field{Name: "window_spec", Type: str, Nullable: true},
	arrow.Field{Name: "state", Type: str},
	arrow.Field{Name: "value", Type: f64},
	arrow.Field{Name: "threshold", Type: f64},
	arrow.Field{Name: "window_start", Type: tsMs},
	arrow.Field{Name: "window_end", Type: tsMs},
	arrow.Field{Name: "at", Type: tsMs},
	arrow.Field{Name: "message", Type: str},
	arrow.Field{Name: "reason", Type: str, Nullable: true},
	arrow.Field{Name: "attribution", Type: arrow.MapOf(str, f64), Nullable: true},
	arrow.Field{Name: "summary", Type: str, Nullable: true},
	arrow.Field{Name: "runbook_url", Type: str, Nullable: true},
	arrow.Field{Name: "labels", Type: arrow.MapOf(str, str), Nullable: true},
	// repeat: the reminder's number for a firing alert notified again
	// (the rule's repeat_interval); null for the first and for RESOLVED.
	arrow.Field{Name: "repeat", Type: i64, Nullable: true},
)

// Manifest is a compaction manifest (package compact): one row per file
// a generation of a partition replaced (role "source") or wrote (role
// "output"), file being its key relative to the bucket's prefix. The
// dataset, dt and hour are in the key, as partitions.
var Manifest = schema("manifest",
	arrow.Field{Name: "generation", Type: i64},
	arrow.Field{Name: "role", Type: str},
	arrow.Field{Name: "file", Type: str},
	arrow.Field{Name: "rows", Type: i64},
	arrow.Field{Name: "bytes", Type: i64},
)

// ByName lists the schemas by dataset name.
var ByName = map[string]*arrow.Schema{"raw": Raw, "windows": Windows, "alerts": Alerts, "manifest": Manifest}
