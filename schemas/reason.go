package schemas

import "fmt"

// Reason classifies why a record was not accepted. Reasons are stable
// strings: they appear in metrics labels and dead-letter files.
type Reason uint8

// Reasons a record can be rejected for. The windows and pipeline packages
// add the reasons that are decided after decoding (late,
// series_limit, panic).
const (
	ReasonNone            Reason = iota
	ReasonMalformedJSON          // not a single valid JSON object
	ReasonTooLarge               // over Options.MaxRecordBytes
	ReasonMissingDeviceID        // no device_id field
	ReasonInvalidDeviceID        // device_id not a thing name
	ReasonMissingTS              // no ts field
	ReasonInvalidTS              // ts neither integer epoch ms nor RFC 3339
	ReasonFutureTS               // ts beyond the allowed clock skew
	ReasonNoMetrics              // no numeric metric at all
	ReasonInvalidMetric          // metric name invalid or value not a number
	ReasonNonFinite              // NaN, Infinity or a number beyond float64 (1e400)
	ReasonDuplicateKey           // a key or metric name appears twice
	ReasonTooManyMetrics         // more than Options.MaxMetrics metrics
	ReasonInvalidSeq             // seq not a non-negative integer
	ReasonLate                   // event time behind the watermark (windows)
	ReasonSeriesLimit            // would exceed the live series limit (windows)
	ReasonPanic                  // processing panicked on this record (pipeline)
	ReasonInvalidReadings        // readings not an array of objects, or beside ts or metrics
	NumReasons
)

var reasonNames = [NumReasons]string{
	ReasonNone:            "none",
	ReasonMalformedJSON:   "malformed_json",
	ReasonTooLarge:        "too_large",
	ReasonMissingDeviceID: "missing_device_id",
	ReasonInvalidDeviceID: "invalid_device_id",
	ReasonMissingTS:       "missing_ts",
	ReasonInvalidTS:       "invalid_ts",
	ReasonFutureTS:        "future_ts",
	ReasonNoMetrics:       "no_metrics",
	ReasonInvalidMetric:   "invalid_metric",
	ReasonNonFinite:       "non_finite",
	ReasonDuplicateKey:    "duplicate_key",
	ReasonTooManyMetrics:  "too_many_metrics",
	ReasonInvalidSeq:      "invalid_seq",
	ReasonLate:            "late",
	ReasonSeriesLimit:     "series_limit",
	ReasonPanic:           "panic",
	ReasonInvalidReadings: "invalid_readings",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", r)
}

// Error is returned for every rejected record. It carries the reason for
// counting and a one-line detail for people.
type Error struct {
	Reason Reason
	Offset int    // byte offset in the record where the problem was found
	Detail string // one line, never contains the raw payload
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s at byte %d: %s", e.Reason, e.Offset, e.Detail)
}
