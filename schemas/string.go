package schemas

import "unicode/utf8"

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
