// Package schemas owns tapline's wire contracts: the JSON telemetry record
// that devices send through an AWS IoT rule, the reasons a record is
// rejected, the dead-letter line, and the alert message (AlertMessage)
// that the SNS sink publishes and the command Lambda reads. The Arrow
// schemas of the datasets in S3 belong to package sinks/parquet, which
// writes them; this package links no Arrow, so the command Lambda stays
// small.
//
// # The telemetry record
//
// One Kinesis record holds one JSON object:
//
//		{"device_id":"keg-0042","ts":1732712345123,"metrics":{"flow_lpm":3.2,"temp_c":4.1}}
//
//	  - device_id (required): an AWS IoT thing name, 1-128 characters of
//	    [a-zA-Z0-9:_-]. It is untrusted input that later becomes part of S3
//	    keys and MQTT topics, so nothing else is accepted.
//	  - ts (required): event time, either an integer number of milliseconds
//	    since the Unix epoch or an RFC 3339 string ("2024-11-27T12:59:05.123Z").
//	    Sub-millisecond digits are truncated. It may be at most
//	    Options.MaxFutureSkew ahead of the reference time the caller passes
//	    (the Kinesis arrival time, so that a replay classifies a record exactly
//	    as the first pass did).
//	  - seq (optional): a non-negative integer the device increments per
//	    message; kept in the raw dataset so duplicates can be found.
//	  - metrics (optional object): metric name to JSON number.
//	  - any other top-level field whose value is a number is a metric too;
//	    other top-level fields (strings, booleans, null, objects, arrays) are
//	    ignored. This accepts the flat payloads IoT rules often forward.
//
// Metric names are 1-128 characters of [a-zA-Z0-9_.:-]. A record needs at
// least one metric. Keys are case-sensitive and may not repeat (a metric may
// not appear both at top level and under "metrics"): encoding/json would
// silently keep the last value, which hides device bugs.
//
// A message may also carry several readings of one device:
//
//	{"device_id":"keg-0042","readings":[{"ts":1732712345123,"metrics":{"flow_lpm":3.2}},{"ts":1732712346123,"flow_lpm":3.4}]}
//
// Each reading holds what a record holds but device_id: ts, seq, metrics
// and numeric fields. Decode accepts the message (Batched) and
// NextReading returns its readings one by one, each validated on its own,
// so a bad one is rejected with its index and the rest are kept; the
// message is refused whole only for malformed JSON, a bad or missing
// device_id, an empty readings array, or a ts, seq or metric beside the
// readings. IoT Core bills per message: ten readings a message cost a
// tenth. See readings.go.
//
// Every rejected record gets exactly one Reason (syntax errors win over
// semantic ones, so the reason does not depend on field order) and a
// one-line error; callers count reasons and route the record to a
// dead-letter store.
package schemas
