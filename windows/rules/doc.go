// Package rules owns anomaly rules: their YAML configuration and the
// engine that evaluates them on the windows a windows.Aggregator closes.
//
// Each (rule, series) pair runs a state machine like a Prometheus alert:
//
//	OK ──bad──▶ PENDING ──M of last N bad──▶ FIRING ──fewer than M bad for keep_firing_for+1 windows──▶ OK
//
// An Alert is emitted only on the transition to FIRING and on resolution,
// never once per window. Its ID is a hash of rule, series, state and the
// event time of the transition, so the same input yields the same alerts
// with the same IDs, which makes SNS deliveries and device commands safe to
// repeat.
//
// Rule kinds: threshold (above/below an aggregate, with a separate clear
// level for hysteresis), zscore (distance from a per-series EWMA baseline
// after a warm-up), rate (change of an aggregate between consecutive
// windows, per unit of time) and missing (a device or metric silent for a
// duration, resolved when data returns).
//
// The engine is owned by the shard goroutine that owns the Aggregator.
package rules
