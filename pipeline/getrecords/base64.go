package getrecords

import "encoding/binary"

// Base64 decoding was a fifth of a GetRecords answer's cost with
// encoding/base64, which looks every character up in one table and
// shifts it into place. Where the CPU has AVX2, decodeVector (assembly)
// decodes 32 characters a step, the last step overlapping the one before;
// what it leaves (the last quantum, or all of a short payload) goes to
// decodeQuanta. On arm64 (the stack's Graviton tasks) decodeQuanta
// decodes it all: a NEON path could not be measured where this was
// written.
//
// decodeQuanta gives each position of a quantum its own table holding
// the character's six bits already shifted, so a quantum is four loads
// and three ORs, and a character outside the alphabet sets a bit no
// valid one does: one test per two quanta.
var b64 [4][256]uint32

// bad marks a character outside the standard alphabet (padding, line
// breaks and JSON's quote and backslash among them).
const bad = 1 << 31

func init() {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for p := range b64 {
		for c := range b64[p] {
			b64[p][c] = bad
		}
		for v, c := range []byte(alphabet) {
			b64[p][c] = uint32(v) << (18 - 6*p)
		}
	}
}

// vectorMin is the shortest payload handed to decodeVector: below it,
// its setup costs more than decodeQuanta (BenchmarkDecode64).
const vectorMin = 64

// decode64 decodes standard, padded base64 into dst, which must hold
// base64.StdEncoding.DecodedLen(len(src)) bytes, and returns
// the length decoded. It takes what encoding/base64's StdEncoding takes
// except line breaks (JSON has none in a string); ok is false for
// anything else, which StdEncoding would refuse too or (line breaks)
// the caller hands to the SDK.
func decode64(dst, src []byte) (n int, ok bool) {
	if len(src)%4 != 0 {
		return 0, false
	}
	if decodeVector != nil && len(src) >= vectorMin {
		// The last quantum, perhaps padded, is decodeQuanta's; so is
		// everything from a step holding a character outside the
		// alphabet, which it refuses.
		body := src[:len(src)-4]
		w, c := decodeVector(dst, body)
		if left := len(body) - c; left > 0 && left < 32 {
			// The last whole step again, overlapping the one before (the
			// bytes it rewrites are the same): only the last quantum is
			// left. If it holds a character outside the alphabet it takes
			// nothing, and decodeQuanta refuses it.
			p := len(body) - 32
			if _, k := decodeVector(dst[p/4*3:], body[p:]); k == 32 {
				w, c = p/4*3+24, len(body)
			}
		}
		n, ok = decodeQuanta(dst[w:], src[c:])
		return w + n, ok
	}
	return decodeQuanta(dst, src)
}

// decodeQuanta is decode64 for a payload of whole quanta (len(src)%4 == 0).
func decodeQuanta(dst, src []byte) (n int, ok bool) {
	// Every quantum but the last, which may be padded: two at a time,
	// writing eight bytes for six (the two after are overwritten next;
	// at least the last quantum's three follow, so they are in dst).
	body := len(src) - 4
	if body < 0 {
		return 0, true
	}
	i := 0
	for ; i+8 <= body; i += 8 {
		s := src[i : i+8 : i+8]
		x := b64[0][s[0]] | b64[1][s[1]] | b64[2][s[2]] | b64[3][s[3]]
		y := b64[0][s[4]] | b64[1][s[5]] | b64[2][s[6]] | b64[3][s[7]]
		if (x|y)&bad != 0 {
			return 0, false
		}
		binary.BigEndian.PutUint64(dst[n:n+8], uint64(x)<<40|uint64(y)<<16)
		n += 6
	}
	for ; i < body; i += 4 {
		s := src[i : i+4 : i+4]
		x := b64[0][s[0]] | b64[1][s[1]] | b64[2][s[2]] | b64[3][s[3]]
		if x&bad != 0 {
			return 0, false
		}
		dst[n], dst[n+1], dst[n+2] = byte(x>>16), byte(x>>8), byte(x)
		n += 3
	}
	// The last quantum: whole, or padded to one or two bytes. The bits
	// padding leaves over are ignored, as StdEncoding (not Strict) does.
	s := src[body : body+4 : body+4]
	x := b64[0][s[0]] | b64[1][s[1]]
	switch {
	case s[3] != '=':
		x |= b64[2][s[2]] | b64[3][s[3]]
		dst[n], dst[n+1], dst[n+2] = byte(x>>16), byte(x>>8), byte(x)
		n += 3
	case s[2] != '=':
		x |= b64[2][s[2]]
		dst[n], dst[n+1] = byte(x>>16), byte(x>>8)
		n += 2
	default:
		dst[n] = byte(x >> 16)
		n++
	}
	if x&bad != 0 {
		return 0, false
	}
	return n, true
}
