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
// windows, per unit of time), missing (a device or metric silent for a
// duration, resolved when data returns), and the detectors of package
// detect, each a score compared with z: robust (median/MAD, or beyond the
// history's range: from range, below or above), seasonal (robust
// Holt-Winters), cusum (level shifts and drifts) and forest (Random Cut
// Forest over one metric or several of a device, with per-metric
// attribution in the alert); and stuck (a window of three readings or
// more, all equal, in a series whose last history windows all varied: a
// frozen sensor, not one that rests now and then). novelty makes a
// detector's score count only above the recent peak of its scores,
// learnt first from novelty_warmup scored windows and rising by at most
// novelty_rise a window after that.
//
// routine: a period (168h) after which an alert that recurs at the same
// phase is a rhythm, not an incident: a FIRING whose window ends a whole
// number of periods after the rule's last FIRING on the series is kept
// as SUPPRESSED, not notified.
//
// Default (default.yml, embedded) is the rule set for signals nobody has
// tuned; benchmarks/DETECTION.md measures it.
//
// A Router (notify.go) stands between the engine and the outputs: every
// alert is a row, and the ones no silence or inhibition suppresses are
// notified, alone or grouped by the rules file's route, all in event
// time so a replay notifies the same. A Config's Record is what a shard
// stores and replays: the rules document and the silences.
//
// The engine is owned by the shard goroutine that owns the Aggregator.
package rules
