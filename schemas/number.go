package schemas

import (
	"math"
	"strconv"
	"unsafe"
)

// parseFloatSlow handles the numbers the fast path in Decoder.number cannot
// convert exactly (more than 15 significant digits or a large exponent).
// ok is false when the value overflows float64.
func parseFloatSlow(b []byte) (float64, bool) {
	// The string does not escape: strconv only reads it, and the error
	// (which would retain it) is dropped here.
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}
