package consumertest

import (
	"fmt"
	"time"

	"github.com/tapline/tapline/deploy/local/stack"
)

// Rules are the rules the telemetry's anomalies trip.
const Rules = `rules:
  - {name: leak, kind: threshold, metric: flow_lpm, window: 1m, aggregate: min, above: 0.2, for: 2, severity: critical}
  - {name: warm, kind: threshold, metric: temp_c, window: 5m/1m, aggregate: mean, above: 8, clear: 6}
`

// Start is the event time of round 0: in the past, so that no record
// (the heartbeat included) is rejected as ahead of its arrival.
var Start = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// DeviceID names device i.
func DeviceID(i int) string { return fmt.Sprintf("keg-%04d", i+1) }

// Leaks and Warms say which devices carry an injected anomaly: every
// 50th device (from the 2nd) leaks from round 12, every 50th (from the
// 3rd) warms up from round 6. Their alerts are the expected ones.
func Leaks(d int) bool { return d%50 == 1 }

// Warms: see Leaks.
func Warms(d int) bool { return d%50 == 2 }

// Telemetry returns rounds from..to-1 of one record per device, 10 s of
// event time apart, partitioned by device id. Every 97th record is
// malformed and every 131st an hour late, which the pipeline must
// dead-letter without losing the records around them.
func Telemetry(devices, from, to int) []stack.Record {
	var recs []stack.Record
	n := from * devices
	for tick := from; tick < to; tick++ {
		ts := Start.Add(time.Duration(tick) * 10 * time.Second)
		for d := range devices {
			n++
			id := DeviceID(d)
			flow, temp := 0.0, 4.0+float64((tick*7+d)%10)/10
			if Leaks(d) && tick >= 12 {
				flow = 0.5
			}
			if Warms(d) && tick >= 6 {
				temp += min(float64(tick-6)*0.5, 10)
			}
			data := fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"flow_lpm":%g,"temp_c":%g}}`, id, ts.UnixMilli(), flow, temp)
			switch {
			case n%97 == 0:
				data = []byte(`{"device_id":"` + id + `","ts":`)
			case n%131 == 0:
				data = fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"temp_c":1}}`, id, ts.Add(-time.Hour).UnixMilli())
			}
			recs = append(recs, stack.Record{Key: id, Data: data})
		}
	}
	return recs
}

// Heartbeat returns one record per device an hour after any telemetry:
// it moves every shard's watermark past all windows, closing them and
// ending the last batch.
func Heartbeat(devices int) []stack.Record {
	var recs []stack.Record
	for i := range devices {
		id := DeviceID(i)
		ts := Start.Add(11 * time.Hour).Format(time.RFC3339)
		recs = append(recs, stack.Record{Key: id, Data: fmt.Appendf(nil, `{"device_id":%q,"ts":%q,"metrics":{"temp_c":4}}`, id, ts)})
	}
	return recs
}
