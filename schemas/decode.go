package schemas

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Options bound what the Decoder accepts. The zero value of a field means
// its default.
type Options struct {
	// MaxRecordBytes rejects larger records before parsing. Default 128 KiB.
	MaxRecordBytes int
	// MaxFutureSkew is how far ts may lie ahead of the reference time passed
	// to Decode. Default 5 minutes.
	MaxFutureSkew time.Duration
	// MaxMetrics bounds metrics per record. Default 256.
	MaxMetrics int
}

// Default limits.
const (
	DefaultMaxRecordBytes = 128 << 10
	DefaultMaxFutureSkew  = 5 * time.Minute
	DefaultMaxMetrics     = 256
)

func (o Options) withDefaults() Options {
	if o.MaxRecordBytes <= 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.MaxFutureSkew <= 0 {
		o.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if o.MaxMetrics <= 0 {
		o.MaxMetrics = DefaultMaxMetrics
	}
	return o
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
	data   []byte
	synErr *Error  // first syntax error: ends decoding
	semErr *Error  // first semantic error: decoding goes on to find syntax errors
	values []value // where the full decoder found each value

	shapes    [maxShapes]shape // see shape.go
	nshapes   int
	lastShape int // tried first
	nextShape int // replaced next once all are in use
	shapeHits uint64
	window    int  // records in the current verdict window
	waste     int  // failed attempts in it
	shapeOff  int  // records left to decode in full after a bad window
	recording bool // values are recorded: the record may become a shape
}

// NewDecoder returns a Decoder with the given limits.
func NewDecoder(opts Options) *Decoder {
	opts = opts.withDefaults()
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
	shapes := d.shapeOff == 0
	d.recording = shapes
	if !shapes {
		d.shapeOff--
	} else if d.decodeShapes(data, refMs) {
		return &d.rec, nil
	}
	r := &d.rec
	r.DeviceID, r.Time, r.Seq, r.Metrics = nil, 0, -1, r.Metrics[:0]
	d.data, d.synErr, d.semErr = data, nil, nil
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
			key, j := knownKey(data[i:])
			if key != nil {
				// The reserved keys, without escapes, as devices send
				// them: no need to scan them byte by byte.
				i += j
			} else {
				key, i = d.str(i)
				if d.synErr != nil {
					return nil, d.synErr
				}
				i = d.ws(i)
				if i >= len(data) || data[i] != ':' {
					return nil, d.syntax(i, "expected ':' after object key")
				}
				i++
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
			case "ts":
				if haveTS {
					d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "ts"`)
				}
				haveTS = true
				kind = valTS
				i = d.ts(i, refMs)
			case "seq":
				if r.Seq != -1 {
					d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "seq"`)
				}
				kind = valSeq
				i = d.seq(i)
			case "metrics":
				if haveMetrics {
					d.semantic(ReasonDuplicateKey, keyAt, `duplicate key "metrics"`)
				}
				haveMetrics = true
				kind = valNone // metric records each member
				i = d.metricsObject(i, keyAt)
			default:
				if i < len(data) && (data[i] == '-' || data[i] >= '0' && data[i] <= '9' || data[i] == 'N' || data[i] == 'I') {
					kind = valNone // metric records it
					i = d.metric(key, keyAt, i)
				} else {
					// An ignored field may not shadow a metric: encoding/json
					// would keep the later value and drop the metric.
					d.checkNotMetric(key, keyAt)
					i = d.skip(i, 0)
				}
			}
			if kind != valNone && d.recording {
				d.values = append(d.values, value{start: uint32(valueAt), end: uint32(i), kind: kind})
			}
			if d.synErr != nil {
				return nil, d.synErr
			}
			i = d.ws(i)
			if i < len(data) && data[i] == ',' {
				i = d.ws(i + 1)
				continue
			}
			if i < len(data) && data[i] == '}' {
				i++
				break
			}
			return nil, d.syntax(i, "expected ',' or '}' in object")
		}
	}
	if i = d.ws(i); i != len(data) {
		return nil, d.syntax(i, "unexpected data after the JSON object")
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
		d.learn(data)
	}
	return r, nil
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

// number scans a JSON number at i. ok is false for a value that is not a
// finite float64: the non-JSON literals NaN, Infinity and -Infinity, which
// devices written in JavaScript or Python emit, and overflows like 1e400.
//
// Telemetry numbers are short decimals without exponents: those take the
// fast path here, the rest numberGeneral.
func (d *Decoder) number(i int) (v float64, ok bool, end int) {
	data := d.data
	j := i
	neg := j < len(data) && data[j] == '-'
	if neg {
		j++
	}
	start := j
	j, mant := scanDigits(data, j, 0)
	intDigits := j - start
	if intDigits == 0 || intDigits > 1 && data[start] == '0' {
		return d.numberGeneral(i)
	}
	frac := 0
	if j < len(data) && data[j] == '.' {
		j++
		fs := j
		j, mant = scanDigits(data, j, mant)
		frac = j - fs
		if frac == 0 {
			return d.numberGeneral(i)
		}
	}
	if intDigits+frac > 15 || j < len(data) && numberGoesOn(data[j]) {
		return d.numberGeneral(i)
	}
	// Exact: the mantissa is below 10^15 < 2^53 and 10^frac is exact.
	v = float64(mant)
	if frac > 0 {
		v /= pow10[frac]
	}
	if neg {
		v = -v
	}
	return v, true, j
}

// scanDigits accumulates the decimal digits from j into mant (which wraps
// past 19 digits: callers count digits and take the general path then).
func scanDigits(data []byte, j int, mant uint64) (int, uint64) {
	for j < len(data) {
		c := data[j] - '0'
		if c > 9 {
			break
		}
		mant = mant*10 + uint64(c)
		j++
	}
	return j, mant
}

// numberGeneral handles every JSON number and the non-JSON literals.
func (d *Decoder) numberGeneral(i int) (v float64, ok bool, end int) {
	data := d.data
	start := i
	if c := data[i]; c == 'N' || c == 'I' || c == '-' && i+1 < len(data) && data[i+1] == 'I' {
		for _, lit := range [...]string{"NaN", "Infinity", "-Infinity"} {
			if hasPrefix(data[i:], lit) {
				return 0, false, i + len(lit)
			}
		}
	}
	neg := false
	if data[i] == '-' {
		neg = true
		i++
	}
	var mant uint64
	digits, exp := 0, 0
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
			if digits < 19 {
				mant = mant*10 + uint64(data[i]-'0')
				digits++
			} else {
				exp++
			}
		}
	default:
		d.syntax(i, "invalid number")
		return 0, false, i
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.syntax(i, "invalid number: digit expected after '.'")
			return 0, false, i
		}
		for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
			if digits < 19 {
				if mant == 0 && data[i] == '0' {
					exp-- // leading zeros of 0.000x keep the mantissa short
				} else {
					mant = mant*10 + uint64(data[i]-'0')
					digits++
					exp--
				}
			}
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		eneg := false
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			eneg = data[i] == '-'
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.syntax(i, "invalid number: digit expected in exponent")
			return 0, false, i
		}
		e := 0
		for ; i < len(data) && data[i] >= '0' && data[i] <= '9'; i++ {
			if e < 100000 {
				e = e*10 + int(data[i]-'0')
			}
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i < len(data) && (data[i] == 'N' || data[i] == 'I' || data[i] >= 'a' && data[i] <= 'z') {
		d.syntax(i, "invalid number")
		return 0, false, i
	}
	// Clinger's fast path: exact when the mantissa and the power of ten are
	// both exactly representable. Otherwise defer to strconv.
	if digits <= 15 && exp >= -22 && exp <= 22 && mant < 1<<53 {
		v = float64(mant)
		if exp < 0 {
			v /= pow10[-exp]
		} else {
			v *= pow10[exp]
		}
		if neg {
			v = -v
		}
		return v, true, i
	}
	v, ok = parseFloatSlow(data[start:i])
	return v, ok, i
}

// numberGoesOn reports whether c after a number's digits makes it not
// plain: an exponent, or letters, which numberGeneral rejects or reads as
// NaN and Infinity.
func numberGoesOn(c byte) bool {
	return c == 'e' || c == 'E' || c == 'N' || c == 'I' || c >= 'a' && c <= 'z'
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// str scans a JSON string at i and returns its unescaped bytes. Strings
// without escapes alias the input; others are unescaped into scratch.
func (d *Decoder) str(i int) ([]byte, int) {
	data := d.data
	if i >= len(data) || data[i] != '"' {
		d.syntax(i, "expected a string")
		return nil, i
	}
	i++
	start := i
	class := uint8(charDevice | charMetric)
	for i < len(data) {
		c := idChar[data[i]]
		if c&charStrEnd != 0 {
			break
		}
		class &= c
		i++
	}
	if i < len(data) {
		switch c := data[i]; {
		case c == '"':
			d.class = class
			if i == start {
				d.class = 0
			}
			return data[start:i], i + 1
		case c == '\\':
			return d.strEscaped(start, i)
		default:
			d.syntax(i, "control character in string")
			return nil, i
		}
	}
	d.syntax(i, "unterminated string")
	return nil, i
}

func (d *Decoder) strEscaped(start, i int) ([]byte, int) {
	data := d.data
	out := len(d.scratch)
	d.scratch = append(d.scratch, data[start:i]...)
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			s := d.scratch[out:len(d.scratch):len(d.scratch)]
			d.class = 0
			if ValidDeviceID(s) {
				d.class |= charDevice
			}
			if ValidMetricName(s) {
				d.class |= charMetric
			}
			return s, i + 1
		case c < 0x20:
			d.syntax(i, "control character in string")
			return nil, i
		case c != '\\':
			d.scratch = append(d.scratch, c)
			i++
			continue
		}
		if i+1 >= len(data) {
			break
		}
		switch e := data[i+1]; e {
		case '"', '\\', '/':
			d.scratch = append(d.scratch, e)
		case 'b':
			d.scratch = append(d.scratch, '\b')
		case 'f':
			d.scratch = append(d.scratch, '\f')
		case 'n':
			d.scratch = append(d.scratch, '\n')
		case 'r':
			d.scratch = append(d.scratch, '\r')
		case 't':
			d.scratch = append(d.scratch, '\t')
		case 'u':
			r, n := hex4(data[i+2:])
			if n < 0 {
				d.syntax(i, "invalid \\u escape")
				return nil, i
			}
			i += 6
			if utf16Surrogate(r) {
				// A high surrogate followed by a low one is one rune;
				// anything else decodes to U+FFFD, as in encoding/json.
				if hasPrefix(data[i:], `\u`) {
					if r2, n2 := hex4(data[i+2:]); n2 >= 0 {
						if c := combineSurrogates(r, r2); c >= 0 {
							d.scratch = utf8.AppendRune(d.scratch, c)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			d.scratch = utf8.AppendRune(d.scratch, r)
			continue
		default:
			d.syntax(i, "invalid escape in string")
			return nil, i
		}
		i += 2
	}
	d.syntax(i, "unterminated string")
	return nil, i
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
	case c == '-' || c >= '0' && c <= '9':
		if hasPrefix(data[i:], "-Infinity") {
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

func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, -1
		}
		r = r<<4 | rune(c)
	}
	return r, 4
}

func utf16Surrogate(r rune) bool { return r >= 0xd800 && r < 0xe000 }

func combineSurrogates(hi, lo rune) rune {
	if hi >= 0xd800 && hi < 0xdc00 && lo >= 0xdc00 && lo < 0xe000 {
		return (hi-0xd800)<<10 | (lo - 0xdc00) + 0x10000
	}
	return -1
}
