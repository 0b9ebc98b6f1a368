package consumer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapline/tapline/pipeline/getrecords"
)

// metrics are the consumer's Prometheus series (names in README's
// operations section).
type metrics struct {
	records, bytes, windows, clamped     prometheus.Counter
	duplicates                           prometheus.Counter
	rejected, alerts, retries            *prometheus.CounterVec
	ruleResets                           *prometheus.CounterVec
	checkpoints, leasesTaken, leasesLost prometheus.Counter
	shardFailures                        prometheus.Counter
	stateResets                          *prometheus.CounterVec
	behind, liveSeries, checkpointAge    *prometheus.GaugeVec
	leaseTarget                          prometheus.Gauge
	handoffs                             prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: name, Help: help})
	}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tapline", Name: name, Help: help}, labels)
	}
	gv := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "tapline", Name: name, Help: help}, []string{"shard"})
	}
	m := &metrics{
		records:       c("records_total", "Records read from the stream."),
		bytes:         c("record_bytes_total", "Payload bytes of the records read."),
		windows:       c("windows_total", "Closed windows written."),
		clamped:       c("records_clamped_total", "Records windowed at arrival + max_ahead: their device's clock runs ahead."),
		duplicates:    c("records_duplicate_total", "Records dropped as redeliveries of a record their device sent just before (same seq, or same time and content)."),
		rejected:      cv("records_rejected_total", "Records dead-lettered, by reason (late records are reason late).", "reason"),
		alerts:        cv("alerts_total", "Alert transitions, by state.", "state"),
		retries:       cv("retries_total", "Retried store or checkpoint operations, by operation.", "op"),
		checkpoints:   c("checkpoints_total", "Checkpoints written (each after its batch and state were durable)."),
		leasesTaken:   c("leases_taken_total", "Shard leases taken by this worker."),
		leasesLost:    c("leases_lost_total", "Shard leases lost or given up; the shard's state was dropped."),
		stateResets:   cv("state_resets_total", "Shards started without their stored state, by cause: state_missing (the state, or a base or earlier state it builds on), state_incompatible (another window pane, lateness or quantiles).", "cause"),
		ruleResets:    cv("rule_state_resets_total", "Rule states a restore or a rules reload dropped because their rule changed or was removed, by reason.", "reason"),
		shardFailures: c("shard_failures_total", "Shards restarted from their checkpoint after an error or panic."),
		behind:        gv("millis_behind_latest", "How far the shard's reader is behind the stream's tip (GetRecords MillisBehindLatest)."),
		liveSeries:    gv("live_series", "Live (device, metric) series of the shard."),
		checkpointAge: gv("checkpoint_age_seconds", "Time since the shard's last checkpoint: what a crash would replay."),
		leaseTarget:   prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tapline", Name: "lease_target", Help: "Leases this worker's share is, from the live workers and open shards (cooperative balancing)."}),
		handoffs:      c("lease_handoffs_total", "Leases this worker handed off to balance the workers: cut, checkpointed, released."),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.records, m.bytes, m.windows, m.clamped, m.duplicates, m.rejected, m.alerts, m.retries,
			m.checkpoints, m.leasesTaken, m.leasesLost, m.stateResets, m.ruleResets, m.shardFailures, m.behind, m.liveSeries, m.checkpointAge,
			m.leaseTarget, m.handoffs} {
			reg.MustRegister(col)
		}
	}
	return m
}

// registerGetRecords registers the counts of GetRecords answers by decoder.
func registerGetRecords(p *getrecords.Protocol, reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: "getrecords_fast_total", Help: "GetRecords answers decoded by tapline's decoder (package getrecords)."}, func() float64 { return float64(p.Fast.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: "getrecords_sdk_total", Help: "GetRecords answers left to the SDK's decoder (child shards, escaped strings, anything unexpected)."}, func() float64 { return float64(p.Fallback.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: "getrecords_reused_total", Help: "GetRecords answers decoded into the buffers of an answer its shard had released."}, func() float64 { return float64(p.Reused.Load()) }),
	)
}
