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

// whole parses the common form of ts and seq, a non-negative integer of
// up to 15 digits, as an integer. Anything else, including every number
// that is not plain, is for d.ts and d.seq.
func (d *Decoder) whole(i int) (int64, int, bool) {
	data := d.data
	j, n := scanDigits(data, i, 0)
	if digits := j - i; digits == 0 || digits > 15 || digits > 1 && data[i] == '0' {
		return 0, j, false
	}
	if j < len(data) {
		if c := data[j]; c == '.' || numberGoesOn(c) {
			return 0, j, false
		}
	}
	return int64(n), j, true
}
