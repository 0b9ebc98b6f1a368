package schemas

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Options bound what the Decoder accepts. The zero value of a field means
// its default.
type Options struct {
	// MaxRecordBytes rejects larger records before parsing. Default 128 KiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// MaxFutureSkew is how far ts may lie ahead of the reference time passed
	// to Decode. Default 5 minutes.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
	// MaxMetrics bounds metrics per record. Default 256.
	MaxMetrics int `yaml:"max_metrics"`
}

// Default limits.
const (
	DefaultMaxRecordBytes = 128 << 10
	DefaultMaxFutureSkew  = 5 * time.Minute
	DefaultMaxMetrics     = 256
)

// EnsureDefaults sets the zero fields to their defaults.
func (o *Options) EnsureDefaults() {
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.MaxFutureSkew == 0 {
		o.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if o.MaxMetrics == 0 {
		o.MaxMetrics = DefaultMaxMetrics
	}
}

// Validate reports every problem, one per line, each naming its
// configuration key.
func (o *Options) Validate() error {
	var errs []error
	if o.MaxRecordBytes < 0 {
		errs = append(errs, fmt.Errorf("max_record_bytes: %d is negative", o.MaxRecordBytes))
	}
	if o.MaxFutureSkew < 0 {
		errs = append(errs, fmt.Errorf("max_future_skew: %v is negative", o.MaxFutureSkew))
	}
	if o.MaxMetrics < 0 {
		errs = append(errs, fmt.Errorf("max_metrics: %d is negative", o.MaxMetrics))
	}
	return errors.Join(errs...)
}

// maxDepth bounds nesting inside ignored fields so a hostile record cannot
// make the scanner recurse deeply.
const maxDepth = 32

// maxTime is 9999-12-31T23:59:59.999Z: Athena and RFC 3339 stop there.
const maxTime = 253402300799999

// A Decoder decodes telemetry records. It is not safe for concurrent use:
// each shard owns one, and after the first few records Decode allocates
// nothing.
type Decoder struct {
	opts    Options
	skewMs  int64
	scratch []byte // unescaped strings; Record slices may point here
	class   uint8  // id classes every byte of the last string scanned is in (charDevice, charMetric)
	rec     Record

	// set while decoding one record
	data      []byte
	synErr    *Error  // first syntax error: ends decoding
	semErr    *Error  // first semantic error: decoding goes on to find syntax errors
	values    []value // where the full decoder found each value
	recording bool    // values are recorded: the record may become a shape

	// set while a batched message's readings are read (readings.go)
	nonJSON   bool      // skip takes NaN and Infinity as values (in readings)
	batched   bool      // the record has readings (readings.go)
	batchAt   int       // offset of its readings array
	readings  []reading // decoded; only the first nReadings are this record's
	nReadings int
	next      int    // the reading NextReading returns next
	readingAt [2]int // the span of the last one it returned
	out       Record // what NextReading returns

	shapes       shapeCache // see shape.go
	readingCache shapeCache // the shapes of readings
}

// NewDecoder returns a Decoder with the given limits.
func NewDecoder(opts Options) *Decoder {
	opts.EnsureDefaults()
	return &Decoder{opts: opts, skewMs: opts.MaxFutureSkew.Milliseconds()}
}

// Decode parses and validates one record. refMs is the reference time for
// the future-skew check in Unix milliseconds (the Kinesis arrival time); 0
// disables that check. The returned Record is valid until the next call.
// A rejected record yields a nil Record and an *Error.
func (d *Decoder) Decode(data []byte, refMs int64) (*Record, error) {
	if len(data) > d.opts.MaxRecordBytes {
		return nil, &Error{Reason: ReasonTooLarge, Offset: d.opts.MaxRecordBytes,
			Detail: "record is " + strconv.Itoa(len(data)) + " bytes, limit " + strconv.Itoa(d.opts.MaxRecordBytes)}
	}
	d.scratch = d.scratch[:0]
	d.shapes.spent = 0
	shapes := d.shapes.off == 0
	d.recording = shapes
	if !shapes {
		d.shapes.off--
	} else if d.decodeShapes(data, refMs) {
		return &d.rec, nil
	}
	r := d.begin(data)
	d.values = d.values[:0]

	haveTS, haveMetrics := false, false
	i := d.ws(0)
	if i >= len(data) || data[i] != '{' {
		return nil, d.syntax(i, "expected a JSON object")
	}
	i = d.ws(i + 1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			keyAt := i
			var key []byte
			if key, i = d.key(i); d.synErr != nil {
				return nil, d.synErr
			}
			i = d.ws(i)
			valueAt, kind := i, valIgnored
			switch string(key) {
			case "device_id":
				if r.DeviceID != nil {
					d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "device_id"`)
				}
				kind = valDevice
				at := i
				if i < len(data) && data[i] == '"' {
					var id []byte
					id, i = d.str(i)
					if d.synErr == nil {
						if d.class&charDevice == 0 || len(id) > MaxIDLen {
							d.semantic(ReasonInvalidDeviceID, at, "device_id must be 1-128 characters of [a-zA-Z0-9:_-]")
						}
						if id == nil {
							id = []byte{}
						}
						r.DeviceID = id
					}
				} else {
					i = d.skip(i, 0)
					d.semantic(ReasonInvalidDeviceID, at, "device_id must be a string")
					r.DeviceID = []byte{}
				}
			case "ts", "seq", "metrics":
				kind, i = d.timeOrMetrics(string(key), keyAt, i, refMs, &haveTS, &haveMetrics)
			case "readings":
				if d.batched {
					d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "readings"`)
				}
				kind = valNone
				d.recording = false // a batch is never a shape
				i = d.readingsArray(i, refMs)
			default:
				kind = valNone
				i = d.other(key, keyAt, i)
			}
			if kind != valNone && d.recording {
				d.values = append(d.values, value{start: uint32(valueAt), end: uint32(i), kind: kind})
			}
			if d.synErr != nil {
				return nil, d.synErr
			}
			var done bool
			if i, done = d.memberEnd(i); d.synErr != nil {
				return nil, d.synErr
			} else if done {
				break
			}
		}
	}
	if i = d.ws(i); i != len(data) {
		return nil, d.syntax(i, "unexpected data after the JSON object")
	}
	if d.batched {
		return d.batch(haveTS || haveMetrics || len(r.Metrics) > 0 || r.Seq != -1)
	}
	if d.semErr != nil {
		return nil, d.semErr
	}
	switch {
	case r.DeviceID == nil:
		return nil, &Error{Reason: ReasonMissingDeviceID, Offset: len(data), Detail: "no device_id field"}
	case !haveTS:
		return nil, &Error{Reason: ReasonMissingTS, Offset: len(data), Detail: "no ts field"}
	case len(r.Metrics) == 0:
		return nil, &Error{Reason: ReasonNoMetrics, Offset: len(data), Detail: "no numeric metric in the record"}
	}
	if shapes {
		d.shapes.learn(data, d.values, r.Metrics)
	}
	return r, nil
}

// timeOrMetrics reads the value of a ts, seq or metrics member, a
// record's or a reading's, and says what it was.
func (d *Decoder) timeOrMetrics(key string, keyAt, i int, refMs int64, haveTS, haveMetrics *bool) (valueKind, int) {
	switch key {
	case "ts":
		if *haveTS {
			d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "ts"`)
		}
		*haveTS = true
		return valTS, d.ts(i, refMs)
	case "seq":
		if d.rec.Seq != -1 {
			d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "seq"`)
		}
		return valSeq, d.seq(i)
	}
	if *haveMetrics {
		d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "metrics"`)
	}
	*haveMetrics = true
	return valNone, d.metricsObject(i, keyAt) // metric records each member
}

// key reads an object member's key at i (a reserved key without escapes
// in one step) and the colon after it; it returns the key and where the
// value may start.
func (d *Decoder) key(i int) ([]byte, int) {
	if key, j := knownKey(d.data[i:]); key != nil {
		return key, i + j
	}
	key, i := d.str(i)
	if d.synErr != nil {
		return nil, i
	}
	i = d.ws(i)
	if i >= len(d.data) || d.data[i] != ':' {
		d.syntax(i, "expected ':' after object key")
		return nil, i
	}
	return key, i + 1
}

// memberEnd reads what follows an object member at i: a comma, and it
// returns where the next key starts, or the closing brace, and done.
func (d *Decoder) memberEnd(i int) (int, bool) {
	i = d.ws(i)
	if i < len(d.data) && d.data[i] == ',' {
		return d.ws(i + 1), false
	}
	if i < len(d.data) && d.data[i] == '}' {
		return i + 1, true
	}
	d.syntax(i, "expected ',' or '}' in object")
	return i, true
}

// other reads the value of a member that is not reserved: a number is a
// metric, anything else is skipped.
func (d *Decoder) other(key []byte, keyAt, i int) int {
	data := d.data
	if i < len(data) && (data[i] == '-' || data[i] >= '0' && data[i] <= '9' || data[i] == 'N' || data[i] == 'I') {
		return d.metric(key, keyAt, i) // metric records it
	}
	// An ignored field may not shadow a metric: encoding/json would keep
	// the later value and drop the metric.
	d.checkNotMetric(key, keyAt)
	return d.skip(i, 0)
}

// begin resets the record and the per-record state before data is
// decoded, by either path.
func (d *Decoder) begin(data []byte) *Record {
	r := &d.rec
	r.DeviceID, r.Time, r.Seq, r.Reading, r.Metrics = nil, 0, -1, -1, r.Metrics[:0]
	d.data, d.synErr, d.semErr, d.batched = data, nil, nil, false
	return r
}

func (d *Decoder) syntax(at int, detail string) *Error {
	if d.synErr == nil {
		if at >= len(d.data) {
			detail = "unexpected end of input: " + detail
		}
		d.synErr = &Error{Reason: ReasonMalformedJSON, Offset: at, Detail: detail}
	}
	return d.synErr
}

func (d *Decoder) semantic(reason Reason, at int, detail string) {
	if d.semErr == nil {
		d.semErr = &Error{Reason: reason, Offset: at, Detail: detail}
	}
}

// ws skips JSON whitespace. Every JSON whitespace byte is <= ' ', so
// one compare settles the common case of none.
func (d *Decoder) ws(i int) int {
	data := d.data
	for i < len(data) && data[i] <= ' ' {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// ts parses the event time at i.
func (d *Decoder) ts(i int, refMs int64) int {
	data := d.data
	at := i
	var ms int64
	switch {
	case i < len(data) && data[i] == '"':
		var s []byte
		s, i = d.str(i)
		if d.synErr != nil {
			return i
		}
		t, ok := parseRFC3339(s)
		if !ok {
			d.semantic(ReasonInvalidTS, at, "ts string is not RFC 3339 (2006-01-02T15:04:05.999Z07:00)")
			return i
		}
		ms = t
	case i < len(data) && (data[i] == '-' || data[i] >= '0' && data[i] <= '9'):
		var v float64
		var ok bool
		v, ok, i = d.number(i)
		if d.synErr != nil {
			return i
		}
		if !ok || v != math.Trunc(v) {
			d.semantic(ReasonInvalidTS, at, "ts number must be whole epoch milliseconds")
			return i
		}
		if v < 0 || v > maxTime {
			d.semantic(ReasonInvalidTS, at, "ts is outside 1970-01-01..9999-12-31")
			return i
		}
		ms = int64(v)
	default:
		i = d.skip(i, 0)
		d.semantic(ReasonInvalidTS, at, "ts must be epoch milliseconds or an RFC 3339 string")
		return i
	}
	if ms < 0 || ms > maxTime {
		d.semantic(ReasonInvalidTS, at, "ts is outside 1970-01-01..9999-12-31")
		return i
	}
	if refMs > 0 && ms > refMs+d.skewMs {
		d.semantic(ReasonFutureTS, at, "ts is "+strconv.FormatInt((ms-refMs)/1000, 10)+"s ahead of arrival, limit "+strconv.FormatInt(d.skewMs/1000, 10)+"s")
	}
	d.rec.Time = ms
	return i
}

func (d *Decoder) seq(i int) int {
	at := i
	if i < len(d.data) && (d.data[i] == '-' || d.data[i] >= '0' && d.data[i] <= '9') {
		v, ok, j := d.number(i)
		if d.synErr != nil {
			return j
		}
		if !ok || v != math.Trunc(v) || v < 0 || v > 1<<53 {
			d.semantic(ReasonInvalidSeq, at, "seq must be a non-negative integer below 2^53")
		} else {
			d.rec.Seq = int64(v)
		}
		return j
	}
	j := d.skip(i, 0)
	d.semantic(ReasonInvalidSeq, at, "seq must be a number")
	return j
}

func (d *Decoder) metricsObject(i, keyAt int) int {
	data := d.data
	if i >= len(data) || data[i] != '{' {
		j := d.skip(i, 0)
		d.semantic(ReasonInvalidMetric, i, `"metrics" must be an object`)
		return j
	}
	i = d.ws(i + 1)
	if i < len(data) && data[i] == '}' {
		return i + 1
	}
	for {
		at := i
		var name []byte
		name, i = d.str(i)
		if d.synErr != nil {
			return i
		}
		i = d.ws(i)
		if i >= len(data) || data[i] != ':' {
			d.syntax(i, "expected ':' after metric name")
			return i
		}
		i = d.metric(name, at, d.ws(i+1))
		if d.synErr != nil {
			return i
		}
		i = d.ws(i)
		if i < len(data) && data[i] == ',' {
			i = d.ws(i + 1)
			continue
		}
		if i < len(data) && data[i] == '}' {
			return i + 1
		}
		d.syntax(i, "expected ',' or '}' in metrics")
		return i
	}
}

// metric parses the value of metric name at i and appends it.
func (d *Decoder) metric(name []byte, nameAt, i int) int {
	data := d.data
	if i >= len(data) || !(data[i] == '-' || data[i] >= '0' && data[i] <= '9' || data[i] == 'N' || data[i] == 'I') {
		j := d.skip(i, 0)
		d.semantic(ReasonInvalidMetric, i, "metric value must be a number")
		return j
	}
	valid := d.class&charMetric != 0 && len(name) <= MaxIDLen
	v, ok, j := d.number(i)
	if d.synErr != nil {
		return j
	}
	if !ok {
		d.semantic(ReasonNonFinite, i, "metric value is NaN, infinite or beyond float64 range")
		return j
	}
	if !valid {
		d.semantic(ReasonInvalidMetric, nameAt, "metric name must be 1-128 characters of [a-zA-Z0-9_.:-]")
		return j
	}
	ms := d.rec.Metrics
	for k := range ms {
		if string(ms[k].Name) == string(name) {
			d.semantic(ReasonDuplicateKey, nameAt, "metric "+string(name)+" appears twice")
			return j
		}
	}
	if len(ms) >= d.opts.MaxMetrics {
		d.semantic(ReasonTooManyMetrics, nameAt, "more than "+strconv.Itoa(d.opts.MaxMetrics)+" metrics")
		return j
	}
	d.rec.Metrics = append(ms, Metric{Name: name, Value: v})
	if d.recording {
		d.values = append(d.values, value{start: uint32(i), end: uint32(j), kind: valMetric})
	}
	return j
}

func (d *Decoder) checkNotMetric(key []byte, at int) {
	for k := range d.rec.Metrics {
		if string(d.rec.Metrics[k].Name) == string(key) {
			d.semantic(ReasonDuplicateKey, at, "metric "+string(key)+" appears twice")
			return
		}
	}
}

// skip scans over any JSON value at i, checking its syntax.
func (d *Decoder) skip(i, depth int) int {
	data := d.data
	if i >= len(data) {
		d.syntax(i, "expected a value")
		return i
	}
	switch c := data[i]; {
	case c == '"':
		_, i = d.str(i)
		return i
	case c == '{' || c == '[':
		if depth >= maxDepth {
			d.syntax(i, "nested too deeply")
			return i
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = d.ws(i + 1)
		if i < len(data) && data[i] == closer {
			return i + 1
		}
		for {
			if c == '{' {
				_, i = d.str(i)
				if d.synErr != nil {
					return i
				}
				i = d.ws(i)
				if i >= len(data) || data[i] != ':' {
					d.syntax(i, "expected ':' after object key")
					return i
				}
				i = d.ws(i + 1)
			}
			i = d.skip(i, depth+1)
			if d.synErr != nil {
				return i
			}
			i = d.ws(i)
			if i < len(data) && data[i] == ',' {
				i = d.ws(i + 1)
				continue
			}
			if i < len(data) && data[i] == closer {
				return i + 1
			}
			d.syntax(i, "expected ',' or '"+string(closer)+"'")
			return i
		}
	case c == '-' || c >= '0' && c <= '9' || d.nonJSON && (c == 'N' || c == 'I'):
		if !d.nonJSON && hasPrefix(data[i:], "-Infinity") {
			d.syntax(i, "invalid value")
			return i
		}
		_, _, i = d.number(i)
		return i
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if hasPrefix(data[i:], lit) {
			return i + len(lit)
		}
	}
	d.syntax(i, "invalid value")
	return i
}

// knownKey recognises `"device_id":`, `"ts":`, `"seq":` and `"metrics":`
// at the start of b and returns the key and the length up to and
// including the colon; nil if b starts otherwise.
func knownKey(b []byte) ([]byte, int) {
	if len(b) < 2 {
		return nil, 0
	}
	switch b[1] {
	case 'd':
		if hasPrefix(b, `"device_id":`) {
			return b[1:10], 12
		}
	case 't':
		if hasPrefix(b, `"ts":`) {
			return b[1:3], 5
		}
	case 's':
		if hasPrefix(b, `"seq":`) {
			return b[1:4], 6
		}
	case 'm':
		if hasPrefix(b, `"metrics":`) {
			return b[1:8], 10
		}
	}
	return nil, 0
}

func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}
