// Package layout names the objects tapline writes, in S3 or a local
// directory, in the layout Athena's partition projection expects:
//
//	{prefix}/{dataset}/dt=YYYY-MM-DD/hour=HH/{shard}-{first}-{last}.parquet
//
// dt and hour are the event time (UTC) of the rows. The name is a function
// of the input alone: the shard and the first and last sequence numbers
// of the records that produced the file, so a replay after a crash names
// the same object again instead of adding a second one. Rows that no
// record produced (windows closed by an idle advance or at shard end) are
// named {shard}-{last sequence number before them}-w{watermark}.
//
// Every part is validated before it reaches a key: a key never leaves its
// prefix, whatever the shard id or sequence numbers say.
package layout

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Datasets tapline writes.
const (
	Raw        = "raw"
	Windows    = "windows"
	Alerts     = "alerts"
	DeadLetter = "deadletter"
)

// ValidPrefix reports whether p can start every key: empty, or
// slash-separated segments of [a-zA-Z0-9._-] that are not "." or "..",
// without leading or trailing slashes.
func ValidPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > 512 {
		return errors.New("layout: prefix longer than 512 bytes")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("layout: prefix %q has an empty, '.' or '..' segment", p)
		}
		for i := 0; i < len(seg); i++ {
			if !safe(seg[i]) {
				return fmt.Errorf("layout: prefix %q: character %q not allowed", p, seg[i])
			}
		}
	}
	return nil
}

// ValidSegment reports whether s can be one segment of a key (an
// application name in the state and app namespaces): 1-200 characters of
// [a-zA-Z0-9._-], not "." or "..".
func ValidSegment(s string) error {
	if s == "" || len(s) > 200 || strings.Contains(s, "/") {
		return fmt.Errorf("layout: %q is not one key segment of 1-200 characters", s)
	}
	return ValidPrefix(s)
}

func safe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Partition is the directory of one dataset's rows for one event hour,
// relative to the prefix: "windows/dt=2026-11-27/hour=18".
func Partition(dataset string, eventMs int64) string {
	t := time.UnixMilli(eventMs).UTC()
	return fmt.Sprintf("%s/dt=%s/hour=%02d", dataset, t.Format("2006-01-02"), t.Hour())
}

// Key is the object key of a file: prefix, partition and a name made of
// the shard id and the range of sequence numbers, with extension ext
// ("parquet" or "jsonl"). It fails rather than produce a key outside the
// prefix or a name that differs by the caller's whims.
func Key(prefix, dataset string, eventMs int64, shard, first, last, ext string) (string, error) {
	if err := ValidPrefix(prefix); err != nil {
		return "", err
	}
	switch dataset {
	case Raw, Windows, Alerts, DeadLetter:
	default:
		return "", fmt.Errorf("layout: unknown dataset %q", dataset)
	}
	switch ext {
	case "parquet", "jsonl":
	default:
		return "", fmt.Errorf("layout: unknown extension %q", ext)
	}
	if shard == "" || len(shard) > 128 {
		return "", fmt.Errorf("layout: shard id must be 1-128 characters")
	}
	for i := 0; i < len(shard); i++ {
		if c := shard[i]; !(safe(c) && c != '.') {
			return "", fmt.Errorf("layout: shard id %q: character %q not allowed", shard, c)
		}
	}
	// last is "w" and a watermark for a batch without records (windows
	// closed by an idle advance or at shard end), named after the batch
	// before it.
	for i, seq := range []string{first, last} {
		if i == 1 && strings.HasPrefix(seq, "w") {
			seq = seq[1:]
		}
		if seq == "" || len(seq) > 128 || strings.Trim(seq, "0123456789") != "" {
			return "", fmt.Errorf("layout: sequence number %q is not 1-128 decimal digits", seq)
		}
	}
	if eventMs < 0 || eventMs > 253402300799999 {
		return "", fmt.Errorf("layout: event time %d outside years 1970-9999", eventMs)
	}
	return Under(prefix, Partition(dataset, eventMs)+"/"+shard+"-"+first+"-"+last+"."+ext), nil
}

// Under is key under prefix: "{prefix}/{key}", or key when the prefix is
// empty (the bucket's root).
func Under(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "/" + key
}

// AlertDeadLetterKey names the object holding an alert that could not be
// published: {prefix}/deadletter/dt=/hour=/alert-{id}-{state}.jsonl, by
// the alert's event time. Alert ids are 16 hex digits.
func AlertDeadLetterKey(prefix string, atMs int64, alertID, state string) (string, error) {
	if err := ValidPrefix(prefix); err != nil {
		return "", err
	}
	if len(alertID) != 16 || strings.Trim(alertID, "0123456789abcdef") != "" {
		return "", fmt.Errorf("layout: alert id %q is not 16 hex digits", alertID)
	}
	if state != "FIRING" && state != "RESOLVED" {
		return "", fmt.Errorf("layout: alert state %q", state)
	}
	if atMs < 0 || atMs > 253402300799999 {
		return "", fmt.Errorf("layout: event time %d outside years 1970-9999", atMs)
	}
	return Under(prefix, Partition(DeadLetter, atMs)+"/alert-"+alertID+"-"+strings.ToLower(state)+".jsonl"), nil
}

// Namespaces beside the datasets. Objects under State expire (the CDK
// stack's lifecycle rule): a shard's state matters only until its next
// checkpoint. Objects under App never expire.
const (
	State       = "_state"
	App         = "_app"
	SilencesDir = "_silences"
)

// StateDir is the directory of a shard's state at one acknowledged
// position: {prefix}/_state/{app}/{shard}/{position}/, where position is
// the checkpointed sequence number, or "start" before the first
// checkpoint. Package journal names the objects inside it.
func StateDir(prefix, app, shard, position string) string {
	if position == "" {
		position = "start"
	}
	return Under(prefix, State+"/"+app+"/"+shard+"/"+position+"/")
}

// FirstStart is the key of the application's first start time, which an
// initial position of LATEST resolves to: {prefix}/_app/{app}/first-start.
// It must never expire (the children of a split read from it).
func FirstStart(prefix, app string) string { return Under(prefix, App+"/"+app+"/first-start") }

// Silences is the directory of the application's silences (tapline
// silence): {prefix}/_silences/{app}/, one {id}.json per silence,
// immutable, and an {id}.expire beside it once it is expired early. A
// namespace of its own: operators write it, the service only reads it.
func Silences(prefix, app string) string { return Under(prefix, SilencesDir+"/"+app+"/") }

// LegacyFirstStart is where releases before the _app namespace kept the
// first start, under the expiring _state namespace.
func LegacyFirstStart(prefix, app string) string { return Under(prefix, State+"/"+app+"/first-start") }

// Compacted is the namespace compaction (package compact) writes, beside
// the datasets it rewrites:
//
//	{prefix}/compacted/{dataset}/dt=/hour=/{gen}-{digest}-{part}.parquet
//	{prefix}/compacted/manifests/dataset={dataset}/dt=/hour=/{gen}.parquet
//
// A manifest commits one generation of a partition: the files it
// replaced and the files that replace them. The Athena views (package
// athena) show a dataset's files minus those a manifest replaced, plus
// the outputs no later manifest replaced.
const Compacted = "compacted"

// CompactedPartition is the directory of a partition's compacted files,
// relative to the prefix; part is "dt=2026-11-27/hour=18".
func CompactedPartition(dataset, part string) string {
	return Compacted + "/" + dataset + "/" + part
}

// ManifestPartition is the directory of a partition's manifests,
// relative to the prefix.
func ManifestPartition(dataset, part string) string {
	return Compacted + "/manifests/dataset=" + dataset + "/" + part
}

// Internal reports whether key, relative to prefix, is tapline's own
// bookkeeping (State, App, SilencesDir) or derived from the datasets
// (Compacted) rather than an object the service writes for a dataset.
func Internal(prefix, key string) bool {
	rel := key
	if prefix != "" {
		rel = strings.TrimPrefix(key, prefix+"/")
	}
	for _, ns := range []string{State, App, SilencesDir, Compacted} {
		if strings.HasPrefix(rel, ns+"/") {
			return true
		}
	}
	return false
}
