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
	stamps   [][]stamp // each record's timestamps and sequence numbers
	perPass  int64     // readings per device in one pass: the seq step of Shift
	Readings int       // in one pass: records, or readings with batches
	Interval time.Duration
	Span     time.Duration // event time covered by one pass
	Bytes    int64
}

// stamp is where a 13-digit ts and a 10-digit seq are in a record.
type stamp struct{ ts, seq int }

// Start is the event time of the first record.
var Start = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// Generate builds n records from devices devices reporting every
// interval, deterministically from seed.
func Generate(devices, n int, interval time.Duration, seed uint64) *Dataset {
	return generate(devices, n, interval, seed, false)
}

// GenerateShuffled is Generate with the devices in a new random order
// every round, as a shard's records interleave: in Generate's round robin
// a device's state follows the last one's in memory.
func GenerateShuffled(devices, n int, interval time.Duration, seed uint64) *Dataset {
	return generate(devices, n, interval, seed, true)
}

func generate(devices, n int, interval time.Duration, seed uint64, shuffle bool) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	var order []int
	d := &Dataset{Interval: interval, Records: make([][]byte, 0, n), stamps: make([][]stamp, 0, n), Readings: n}
	d.perPass = int64((n + devices - 1) / devices)
	step := interval / time.Duration(devices)
	if step == 0 {
		step = 1
	}
	buf := make([]byte, 0, n*200)
	for i := 0; i < n; i++ {
		dev := i % devices
		if shuffle {
			if dev == 0 {
				order = rng.Perm(devices)
			}
			dev = order[dev]
		}
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
		d.stamps = append(d.stamps, []stamp{{tsAt, seqAt}})
		d.Bytes += int64(len(buf) - start)
	}
	for i := 1; i < n; i += 100 { // 1% out of order
		d.Records[i-1], d.Records[i] = d.Records[i], d.Records[i-1]
		d.stamps[i-1], d.stamps[i] = d.stamps[i], d.stamps[i-1]
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
		for _, st := range d.stamps[i] {
			ts, _ := strconv.ParseInt(string(r[st.ts:st.ts+13]), 10, 64)
			strconv.AppendInt(r[st.ts:st.ts], ts+span, 10) // same width until 2286
			seq, _ := strconv.ParseInt(string(r[st.seq:st.seq+10]), 10, 64)
			strconv.AppendInt(r[st.seq:st.seq], seq+d.perPass, 10)
		}
	}
}

// GenerateBatched is Generate for devices that send their readings batch
// at a time: n messages of batch readings (schemas' readings), each
// reading the six metrics of a Generate record; every device reports once
// per interval and sends a message every batch intervals.
func GenerateBatched(devices, n, batch int, interval time.Duration, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &Dataset{Interval: interval, Records: make([][]byte, 0, n), stamps: make([][]stamp, 0, n), Readings: n * batch}
	rounds := (n + devices - 1) / devices
	d.perPass = int64(rounds * batch)
	step := interval / time.Duration(devices)
	buf := make([]byte, 0, n*(40+160*batch))
	for i := range n {
		dev, round := i%devices, i/devices
		start := len(buf)
		buf = fmt.Appendf(buf, `{"device_id":"dev-%07d","readings":[`, dev)
		var st []stamp
		for j := range batch {
			r := round*batch + j
			ts := Start.Add(time.Duration(r)*interval + time.Duration(dev)*step).UnixMilli()
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"ts":`...)
			tsAt := len(buf) - start
			buf = strconv.AppendInt(buf, ts, 10)
			buf = append(buf, `,"seq":`...)
			seqAt := len(buf) - start
			buf = strconv.AppendInt(buf, firstSeq+int64(r), 10)
			buf = fmt.Appendf(buf, `,"metrics":{"flow_lpm":%.3f,"temp_c":%.2f,"pressure_kpa":%.1f,"battery_v":%.3f,"rssi_dbm":%d,"door_open":%d}}`,
				4*rng.Float64(), 3+rng.Float64(), 95+10*rng.Float64(), 3.5+0.5*rng.Float64(), -90+rng.IntN(40), rng.IntN(2))
			st = append(st, stamp{tsAt, seqAt})
		}
		buf = append(buf, "]}"...)
		d.Records = append(d.Records, buf[start:len(buf):len(buf)])
		d.stamps = append(d.stamps, st)
		d.Bytes += int64(len(buf) - start)
	}
	d.Span = time.Duration(rounds*batch) * interval
	return d
}
