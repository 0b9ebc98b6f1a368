package benchmarks

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Dataset is a generated stream of telemetry records in arrival order:
// every device reports once per Interval with six metrics, about 200
// bytes a record, and 1% of records swap places with their neighbour
// (out of order but within any lateness). Its timestamps are fixed-width,
// so Shift can move the whole dataset forward in time in place and a
// benchmark can loop over it forever with event time still advancing.
type Dataset struct {
	Records  [][]byte
	tsAt     []int // byte offset of each record's 13-digit ts
	Interval time.Duration
	Span     time.Duration // event time covered by one pass
	Bytes    int64
}

// Start is the event time of the first record.
var Start = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// Generate builds n records from devices devices reporting every
// interval, deterministically from seed.
func Generate(devices, n int, interval time.Duration, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &Dataset{Interval: interval, Records: make([][]byte, 0, n), tsAt: make([]int, 0, n)}
	step := interval / time.Duration(devices)
	if step == 0 {
		step = 1
	}
	buf := make([]byte, 0, n*200)
	for i := 0; i < n; i++ {
		dev := i % devices
		ts := Start.Add(time.Duration(i) * step).UnixMilli()
		start := len(buf)
		buf = fmt.Appendf(buf, `{"device_id":"dev-%07d","ts":`, dev)
		tsAt := len(buf) - start
		buf = strconv.AppendInt(buf, ts, 10)
		buf = fmt.Appendf(buf, `,"seq":%d,"fw":"1.4.2","metrics":{"flow_lpm":%.3f,"temp_c":%.2f,"pressure_kpa":%.1f,"battery_v":%.3f,"rssi_dbm":%d,"door_open":%d}}`,
			i/devices, 4*rng.Float64(), 3+rng.Float64(), 95+10*rng.Float64(), 3.5+0.5*rng.Float64(), -90+rng.IntN(40), rng.IntN(2))
		d.Records = append(d.Records, buf[start:len(buf):len(buf)])
		d.tsAt = append(d.tsAt, tsAt)
		d.Bytes += int64(len(buf) - start)
	}
	for i := 1; i < n; i += 100 { // 1% out of order
		d.Records[i-1], d.Records[i] = d.Records[i], d.Records[i-1]
		d.tsAt[i-1], d.tsAt[i] = d.tsAt[i], d.tsAt[i-1]
	}
	d.Span = time.Duration(n) * step
	return d
}

// Shift moves every timestamp forward by one Span, in place, so the next
// pass continues where this one ended.
func (d *Dataset) Shift() {
	span := d.Span.Milliseconds()
	for i, r := range d.Records {
		at := d.tsAt[i]
		ts, _ := strconv.ParseInt(string(r[at:at+13]), 10, 64)
		strconv.AppendInt(r[at:at], ts+span, 10) // same width until 2286
	}
}
