package schemas

// Record is a decoded, validated telemetry record. Its byte slices alias
// the input and the Decoder's own memory (unescaped strings, the metric
// names of remembered shapes): they are valid until the next call to
// Decode. Copy what must outlive that (the windows package interns
// device ids and metric names once per series).
type Record struct {
	DeviceID []byte
	Time     int64 // event time, Unix milliseconds
	Seq      int64 // device sequence number, -1 when absent
	Reading  int   // index in a batched message (readings.go), -1 for a message of one
	Metrics  []Metric
}

// Metric is one named measurement of a Record.
type Metric struct {
	// Name aliases the input or the Decoder's memory. Its capacity
	// reaches past the name: at least 16 bytes from its start for a
	// record decoded by a remembered shape (the shape's names are
	// padded), and to the end of the input otherwise. Readers may load
	// the 16 bytes from Name's start (package word) to compare names
	// without memequal, and must check cap(Name) >= 16 first.
	Name  []byte
	Value float64 // always finite
}

// MaxIDLen is the longest device id or metric name accepted (the AWS IoT
// thing-name limit).
const MaxIDLen = 128

// ValidDeviceID reports whether id is an AWS IoT thing name:
// 1-128 characters of [a-zA-Z0-9:_-]. Such ids are safe inside S3 keys and
// MQTT topics: no '/', '+', '#', '$', '.', whitespace or non-ASCII.
func ValidDeviceID[T string | []byte](id T) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if idChar[id[i]]&charDevice == 0 {
			return false
		}
	}
	return true
}

// ValidMetricName reports whether name is 1-128 characters of
// [a-zA-Z0-9_.:-].
func ValidMetricName[T string | []byte](name T) bool {
	if len(name) == 0 || len(name) > MaxIDLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if idChar[name[i]]&charMetric == 0 {
			return false
		}
	}
	return true
}

// Byte classes, in one table so the string scanner in Decoder.str
// validates ids while it looks for the closing quote.
const (
	charDevice = 1 << iota // allowed in a device id
	charMetric             // allowed in a metric name
	charStrEnd             // ends the fast scan of a JSON string: '"', '\\', control
)

var idChar = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum || c == ':' || c == '_' || c == '-' {
			t[c] |= charDevice | charMetric
		}
		if c == '.' {
			t[c] |= charMetric
		}
		if c < 0x20 || c == '"' || c == '\\' {
			t[c] |= charStrEnd
		}
	}
	return t
}()
