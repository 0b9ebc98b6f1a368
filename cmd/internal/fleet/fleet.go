// Package fleet simulates a fleet of smart beer kegs in event time: pours
// that move beer through the flow meter, a cooler holding the keg cold,
// CO2 pressure and a battery, plus the faults tapline exists to catch (a
// leak, a failing cooler, a device that goes offline) and the bad input
// real fleets send (malformed payloads, late and out-of-order records).
//
// A Fleet is a deterministic function of its Options: the same seed gives
// the same records, byte for byte, which makes the demo reproducible and
// its output testable.
package fleet

import (
	"fmt"

	"github.com/tapline/tapline/sinks/command"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Fault is something wrong with one keg, or a fraction of the fleet,
// from a point in time.
type Fault struct {
	Kind   FaultKind
	Device int           // index of the keg, 0-based
	From   time.Duration // since the start of the simulation
	// Fraction, when above 0, applies the fault to that share of the
	// kegs (chosen by a hash of the index) instead of Device.
	Fraction float64
}

// FaultKind names a simulated fault.
type FaultKind string

// Simulated faults.
const (
	Leak          FaultKind = "leak"           // flow while the tap is closed
	CoolerFailure FaultKind = "cooler-failure" // temperature drifts up
	Offline       FaultKind = "offline"        // the keg stops sending
	GasEmpty      FaultKind = "gas-empty"      // CO2 runs out: pressure falls
	SensorGlitch  FaultKind = "sensor-glitch"  // every third temperature reading is 12 C off
	StuckSensor   FaultKind = "stuck-sensor"   // the temperature reading stops changing
	ClockSkew     FaultKind = "clock-skew"     // the keg's clock runs 10 minutes ahead
	Duplicate     FaultKind = "duplicate"      // every report is sent twice
)

// Profiles of simulated devices.
const (
	Keg    = ""       // smart beer kegs (the default): flow, temperature, CO2 pressure, battery
	Sensor = "sensor" // a generic environment sensor: temperature, humidity, battery
)

// Options describe a fleet.
type Options struct {
	Profile  string // Keg or Sensor
	Devices  int
	Interval time.Duration // between a keg's reports; default 10s
	Start    time.Time     // event time of the first report
	Seed     uint64
	Faults   []Fault
	BadRate  float64 // share of records replaced by a malformed payload
	LateRate float64 // share of records delayed past any sensible lateness
	// JitterRate is the share of records delayed by up to Interval/2,
	// arriving out of order but in time.
	JitterRate float64
	// Batch > 1 makes each keg send its reports Batch at a time, as one
	// message of readings (package schemas), when the last is due. Its
	// jittered reports join the batch (a batch arrives all at once);
	// malformed and late ones are still sent alone, so a fleet sends the
	// same readings batched or not.
	Batch int
}

// Record is one payload as it would arrive on the stream.
type Record struct {
	Device  string // the partition key when sent to Kinesis
	Data    []byte
	Arrival int64 // Unix ms: when the record reaches the stream
}

type keg struct {
	id          string
	valveClosed bool       // commanded: no flow at all
	coolerBoost bool       // commanded: the cooler overrides a failure
	stuckAt     float64    // the reading a stuck sensor repeats
	recent      [32]string // ids of the last commands applied
	nRecent     int
	gasLoss     float64       // kPa lost since the CO2 ran out
	pourEnd     time.Duration // pouring until then
	temp        float64
	battery     float64
	seq         int64
	pending     []byte // Batch: the readings of the message being filled, comma-separated
	nPending    int
}

// Fleet generates records tick by tick. Not safe for concurrent use.
type Fleet struct {
	opts    Options
	rng     *rand.Rand
	kegs    []keg
	now     time.Duration // elapsed event time of the next tick
	delayed []Record      // late and jittered records waiting for their arrival
	// Duplicated counts the valid readings the duplicate fault sent a
	// second time: what a pipeline should drop as duplicates.
	Duplicated int
}

// New returns a fleet at its first tick.
func New(opts Options) *Fleet {
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Second
	}
	f := &Fleet{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x7a91))}
	for i := 0; i < opts.Devices; i++ {
		k := keg{id: DeviceID(i), temp: 3 + f.rng.Float64(), battery: 3.9 + 0.2*f.rng.Float64()}
		if opts.Profile == Sensor {
			k.id, k.temp = fmt.Sprintf("sensor-%04d", i+1), 20+2*f.rng.Float64()
		}
		f.kegs = append(f.kegs, k)
	}
	return f
}

// DeviceID names keg i.
func DeviceID(i int) string { return fmt.Sprintf("keg-%04d", i+1) }

// Elapsed is the event time simulated so far.
func (f *Fleet) Elapsed() time.Duration { return f.now }

// Step appends the records that arrive during the next tick (one report
// per online keg, plus delayed records now due) to dst, and returns the
// tick's arrival time.
func (f *Fleet) Step(dst []Record) ([]Record, time.Time) {
	tick := f.opts.Start.Add(f.now)
	arrival := tick.UnixMilli()
	// Delayed records due by now arrive first.
	kept := f.delayed[:0]
	for _, r := range f.delayed {
		if r.Arrival <= arrival {
			r.Arrival = arrival
			dst = append(dst, r)
		} else {
			kept = append(kept, r)
		}
	}
	f.delayed = kept
	for i := range f.kegs {
		if f.faulty(i, Offline) {
			dst = f.sendBatch(dst, i, arrival) // what it had, before it went
			continue
		}
		k := &f.kegs[i]
		// Reports spread across the interval, in device order.
		ts := tick.Add(time.Duration(i) * f.opts.Interval / time.Duration(len(f.kegs)+1))
		if f.faulty(i, ClockSkew) {
			ts = ts.Add(10 * time.Minute)
		}
		r := Record{Device: k.id, Data: f.report(i, ts), Arrival: arrival}
		x := f.rng.Float64()
		malformed := x < f.opts.BadRate
		switch {
		case malformed:
			r.Data = f.malformed(k.id, ts)
		case x < f.opts.BadRate+f.opts.LateRate:
			r.Arrival = arrival + (10 * time.Minute).Milliseconds()
			f.delayed = append(f.delayed, r)
			continue
		case f.opts.Batch > 1:
			// On time or jittered: into the batch, without its device
			// id ({"device_id":"ID",...} -> {...}).
			k.pending = append(k.pending, ',', '{')
			k.pending = append(k.pending, r.Data[len(`{"device_id":"`)+len(k.id)+len(`",`):]...)
			if k.nPending++; k.nPending == f.opts.Batch {
				dst = f.sendBatch(dst, i, arrival)
			}
			continue
		case x < f.opts.BadRate+f.opts.LateRate+f.opts.JitterRate:
			r.Arrival = arrival + f.opts.Interval.Milliseconds()/2
			f.delayed = append(f.delayed, r)
			continue
		}
		dst = append(dst, r)
		if f.faulty(i, Duplicate) {
			dst = append(dst, r)
			if !malformed {
				f.Duplicated++
			}
		}
	}
	f.now += f.opts.Interval
	return dst, tick
}

// sendBatch appends keg i's pending readings as one message, if it has
// any (twice with the duplicate fault).
func (f *Fleet) sendBatch(dst []Record, i int, arrival int64) []Record {
	k := &f.kegs[i]
	if k.nPending == 0 {
		return dst
	}
	data := make([]byte, 0, len(k.pending)+len(k.id)+32)
	data = append(data, `{"device_id":"`...)
	data = append(data, k.id...)
	data = append(data, `","readings":[`...)
	data = append(data, k.pending[1:]...) // without the first comma
	data = append(data, "]}"...)
	r := Record{Device: k.id, Data: data, Arrival: arrival}
	dst = append(dst, r)
	if f.faulty(i, Duplicate) {
		dst = append(dst, r)
		f.Duplicated += k.nPending
	}
	k.pending, k.nPending = k.pending[:0], 0
	return dst
}

// Flush appends every keg's pending readings (with Options.Batch), as at
// the end of a run.
func (f *Fleet) Flush(dst []Record) []Record {
	arrival := f.opts.Start.Add(f.now).UnixMilli()
	for i := range f.kegs {
		dst = f.sendBatch(dst, i, arrival)
	}
	return dst
}

func (f *Fleet) faulty(i int, kind FaultKind) bool {
	for _, fl := range f.opts.Faults {
		if fl.Kind != kind || f.now < fl.From {
			continue
		}
		if fl.Fraction > 0 {
			// A fixed pseudo-random share of the kegs, the same every run.
			if float64(uint32(i)*2654435761%10007)/10007 < fl.Fraction {
				return true
			}
		} else if fl.Device == i {
			return true
		}
	}
	return false
}

// report advances keg i by one interval and renders its telemetry.
func (f *Fleet) report(i int, ts time.Time) []byte {
	if f.opts.Profile == Sensor {
		return f.sensorReport(i, ts)
	}
	k := &f.kegs[i]
	k.seq++
	// Pours start at random (a busy bar: about one every 6 minutes per tap)
	// and last 5-40 seconds at 2-4 litres a minute.
	flow := 0.0
	if k.pourEnd <= f.now && f.rng.Float64() < f.opts.Interval.Minutes()/6 {
		k.pourEnd = f.now + time.Duration(5+f.rng.IntN(35))*time.Second
	}
	if k.pourEnd > f.now {
		flow = 2 + 2*f.rng.Float64()
	} else if f.faulty(i, Leak) {
		flow = 0.2 + 0.2*f.rng.Float64()
	}
	if k.valveClosed {
		flow = 0 // the shut-off valve stops pours and leaks alike
	}
	// The cooler holds 3-4.5 C; a failing one lets it climb 0.1 C a minute;
	// a boosted one pulls it down 0.5 C a minute whatever the fault, to
	// 2.5 C, where its probe still reads a few hundredths either way (a
	// reading that never moves is the stuck-sensor fault's). The jitter
	// is a Weyl sequence of the report's number, not the random source,
	// so the rest of the fleet draws what it drew before.
	if k.coolerBoost {
		jitter := 0.05 * (2*math.Mod(float64(k.seq)*0.6180339887498949, 1) - 1)
		k.temp = math.Max(k.temp-0.5*f.opts.Interval.Minutes(), 2.5+jitter)
	} else if f.faulty(i, CoolerFailure) {
		k.temp += 0.1 * f.opts.Interval.Minutes()
	} else {
		k.temp += (3.5-k.temp)*0.1 + 0.1*f.rng.NormFloat64()
	}
	if f.faulty(i, GasEmpty) {
		k.gasLoss = math.Min(k.gasLoss+40*f.opts.Interval.Minutes(), 90)
	}
	pressure := 103 + f.rng.NormFloat64() - 4*math.Min(flow, 1) - k.gasLoss
	k.battery -= 0.00002 * f.opts.Interval.Seconds()
	buf := make([]byte, 0, 200)
	buf = append(buf, `{"device_id":"`...)
	buf = append(buf, k.id...)
	buf = append(buf, `","ts":`...)
	buf = strconv.AppendInt(buf, ts.UnixMilli(), 10)
	buf = append(buf, `,"seq":`...)
	buf = strconv.AppendInt(buf, k.seq, 10)
	buf = append(buf, `,"metrics":{"flow_lpm":`...)
	buf = strconv.AppendFloat(buf, round(flow, 3), 'f', -1, 64)
	temp := k.temp
	if f.faulty(i, SensorGlitch) && k.seq%3 == 0 {
		temp += 12
	}
	if f.faulty(i, StuckSensor) {
		if k.stuckAt == 0 {
			k.stuckAt = temp
		}
		temp = k.stuckAt
	}
	buf = append(buf, `,"temp_c":`...)
	buf = strconv.AppendFloat(buf, round(temp, 2), 'f', -1, 64)
	buf = append(buf, `,"pressure_kpa":`...)
	buf = strconv.AppendFloat(buf, round(pressure, 1), 'f', -1, 64)
	buf = append(buf, `,"battery_v":`...)
	buf = strconv.AppendFloat(buf, round(k.battery, 3), 'f', -1, 64)
	buf = append(buf, `}}`...)
	return buf
}

// malformed returns one of the broken payloads fleets really send.
func (f *Fleet) malformed(id string, ts time.Time) []byte {
	ms := ts.UnixMilli()
	switch f.rng.IntN(5) {
	case 0:
		return fmt.Appendf(nil, `{"device_id":"%s","ts":%d,"metrics":{"flow_lpm":0.0,"temp_c":`, id, ms) // truncated
	case 1:
		return fmt.Appendf(nil, `{"device_id":"%s","ts":%d,"metrics":{"temp_c":NaN}}`, id, ms)
	case 2:
		return fmt.Appendf(nil, `{"device_id":"../%s","ts":%d,"metrics":{"temp_c":4}}`, id, ms)
	case 3:
		return fmt.Appendf(nil, `{"device_id":"%s","metrics":{"temp_c":4}}`, id)
	default:
		return fmt.Appendf(nil, `{"device_id":"%s","ts":%d,"metrics":{"temp_c":1e400}}`, id, ms)
	}
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}

// Index returns the index of the keg with the id, or -1.
func (f *Fleet) Index(deviceID string) int {
	for i := range f.kegs {
		if f.kegs[i].id == deviceID {
			return i
		}
	}
	return -1
}

// Apply makes the keg obey a command: valve closed or open, cooler boost
// or normal. It reports whether anything changed; a command already
// applied (same id) changes nothing, and a state the keg does not know is
// an error (the keg ignores it).
func (f *Fleet) Apply(c *command.Command) (bool, error) {
	i := f.Index(c.DeviceID)
	if i < 0 {
		return false, fmt.Errorf("fleet: no keg %q", c.DeviceID)
	}
	k := &f.kegs[i]
	for _, id := range k.recent {
		if id == c.ID {
			return false, nil
		}
	}
	valve, cooler := k.valveClosed, k.coolerBoost
	for key, v := range c.Desired {
		switch {
		case key == "valve" && (v == "closed" || v == "open"):
			valve = v == "closed"
		case key == "cooler" && (v == "boost" || v == "normal"):
			cooler = v == "boost"
		default:
			return false, fmt.Errorf("fleet: %s does not understand %s=%s", k.id, key, v)
		}
	}
	k.recent[k.nRecent%len(k.recent)] = c.ID
	k.nRecent++
	changed := valve != k.valveClosed || cooler != k.coolerBoost
	k.valveClosed, k.coolerBoost = valve, cooler
	return changed, nil
}

// Reported is the keg's state as it reports it to its shadow.
func (f *Fleet) Reported(deviceID string) map[string]string {
	i := f.Index(deviceID)
	if i < 0 {
		return nil
	}
	k := &f.kegs[i]
	valve, cooler := "open", "normal"
	if k.valveClosed {
		valve = "closed"
	}
	if k.coolerBoost {
		cooler = "boost"
	}
	return map[string]string{"valve": valve, "cooler": cooler}
}

// sensorReport renders a generic sensor: room temperature drifting with
// the hour, humidity, battery. A stuck sensor repeats its temperature;
// a cooler failure here is a heat source: +0.2 C a minute.
func (f *Fleet) sensorReport(i int, ts time.Time) []byte {
	k := &f.kegs[i]
	k.seq++
	hour := float64(ts.UTC().Hour()) + float64(ts.UTC().Minute())/60
	target := 21 + 2*math.Sin((hour-9)/24*2*math.Pi)
	k.temp += (target-k.temp)*0.05 + 0.05*f.rng.NormFloat64()
	if f.faulty(i, CoolerFailure) {
		k.temp += 0.2 * f.opts.Interval.Minutes()
	}
	temp := k.temp
	if f.faulty(i, StuckSensor) {
		if k.stuckAt == 0 {
			k.stuckAt = temp
		}
		temp = k.stuckAt
	}
	humidity := 45 - (k.temp-21)*2 + 2*f.rng.NormFloat64()
	k.battery -= 0.00001 * f.opts.Interval.Seconds()
	return fmt.Appendf(nil, `{"device_id":"%s","ts":%d,"seq":%d,"metrics":{"temp_c":%s,"humidity_pct":%s,"battery_v":%s}}`,
		k.id, ts.UnixMilli(), k.seq, strconv.FormatFloat(round(temp, 2), 'f', -1, 64),
		strconv.FormatFloat(round(humidity, 1), 'f', -1, 64), strconv.FormatFloat(round(k.battery, 3), 'f', -1, 64))
}
