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
// and so are its sequence numbers, so Shift can move the whole dataset
// forward in time in place and a benchmark can loop over it forever with
// event time and sequence numbers still advancing (a pass replayed as it
// was would be all duplicates).
type Dataset struct {
	Records  [][]byte
	tsAt     []int // byte offset of each record's 13-digit ts
	seqAt    []int // byte offset of each record's 10-digit seq
	perPass  int64 // records per device in one pass: the seq step of Shift
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
	d := &Dataset{Interval: interval, Records: make([][]byte, 0, n), tsAt: make([]int, 0, n), seqAt: make([]int, 0, n)}
	d.perPass = int64((n + devices - 1) / devices)
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
		buf = append(buf, `,"seq":`...)
		seqAt := len(buf) - start
		buf = strconv.AppendInt(buf, firstSeq+int64(i/devices), 10)
		buf = fmt.Appendf(buf, `,"fw":"1.4.2","metrics":{"flow_lpm":%.3f,"temp_c":%.2f,"pressure_kpa":%.1f,"battery_v":%.3f,"rssi_dbm":%d,"door_open":%d}}`,
			4*rng.Float64(), 3+rng.Float64(), 95+10*rng.Float64(), 3.5+0.5*rng.Float64(), -90+rng.IntN(40), rng.IntN(2))
		d.Records = append(d.Records, buf[start:len(buf):len(buf)])
		d.tsAt = append(d.tsAt, tsAt)
		d.seqAt = append(d.seqAt, seqAt)
		d.Bytes += int64(len(buf) - start)
	}
	for i := 1; i < n; i += 100 { // 1% out of order
		d.Records[i-1], d.Records[i] = d.Records[i], d.Records[i-1]
		d.tsAt[i-1], d.tsAt[i] = d.tsAt[i], d.tsAt[i-1]
		d.seqAt[i-1], d.seqAt[i] = d.seqAt[i], d.seqAt[i-1]
	}
	d.Span = time.Duration(n) * step
	return d
}

// firstSeq starts sequence numbers at ten digits, so they keep their
// width for a billion passes.
const firstSeq = 1_000_000_000

// Shift moves every timestamp forward by one Span and every sequence
// number by one pass, in place, so the next pass continues where this
// one ended.
func (d *Dataset) Shift() {
	span := d.Span.Milliseconds()
	for i, r := range d.Records {
		at := d.tsAt[i]
		ts, _ := strconv.ParseInt(string(r[at:at+13]), 10, 64)
		strconv.AppendInt(r[at:at], ts+span, 10) // same width until 2286
		at = d.seqAt[i]
		seq, _ := strconv.ParseInt(string(r[at:at+10]), 10, 64)
		strconv.AppendInt(r[at:at], seq+d.perPass, 10)
	}
}
