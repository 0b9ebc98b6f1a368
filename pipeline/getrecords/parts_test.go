package getrecords

import (
	"bytes"
	"encoding/base64"
	"math"
	"strconv"
	"testing"
)

// sameAsStd: decode64 decodes what StdEncoding decodes, to the same
// bytes, and refuses the rest (line breaks too, which StdEncoding skips).
func sameAsStd(t *testing.T, src []byte) {
	t.Helper()
	want, err := base64.StdEncoding.DecodeString(string(src))
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, ok := decode64(dst, src)
	switch {
	case ok && err != nil:
		t.Fatalf("%q: decoded %q, StdEncoding refuses it: %v", src, dst[:n], err)
	case ok && !bytes.Equal(dst[:n], want):
		t.Fatalf("%q: decoded %q, StdEncoding %q", src, dst[:n], want)
	case !ok && err == nil && !bytes.ContainsAny(src, "\r\n"):
		t.Fatalf("%q: refused, StdEncoding decodes %q", src, want)
	}
}

func TestDecode64(t *testing.T) {
	for _, s := range []string{
		"", "QQ==", "QUI=", "QUJD", "QUJDRA==", "QUJDREVG", "QUJDREVGRw==", "QR==", // trailing bits StdEncoding ignores
		"QQ", "QQ=", "Q===", "QQ==QUJD", "QUJD\nREVG", "QUJDREV\n", "QU\"D", "QU\\D", "QUJD REVG", "-_-_",
	} {
		sameAsStd(t, []byte(s))
	}
	for n := range 64 { // every length through the two-quanta loop and its tail
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + n)
		}
		sameAsStd(t, []byte(base64.StdEncoding.EncodeToString(b)))
	}
}

func FuzzBase64(f *testing.F) {
	f.Add([]byte("QUJDREVGRw=="))
	f.Add([]byte("QQ==QUJD"))
	f.Fuzz(func(t *testing.T, src []byte) {
		sameAsStd(t, src)
		sameAsStd(t, []byte(base64.StdEncoding.EncodeToString(src)))
	})
}

func BenchmarkDecode64(b *testing.B) {
	src := []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("tapline payload "), 18))) // 288 bytes
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	b.Run("stdlib", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			base64.StdEncoding.Decode(dst, src)
		}
	})
	b.Run("decode64", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			decode64(dst, src)
		}
	})
}

// FuzzParseFloat: parseFloat is strconv.ParseFloat, bit for bit, on
// every JSON number.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"1764266400.123", "-0", "0.5", "-1.25", "123456789012345", "1234567890123456", "0.0000000000000000000001", "1e5", "9007199254740993"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := decoder{b: []byte(s)}
		num, _, err := d.number()
		if err != nil || d.i != len(s) {
			return
		}
		got, err1 := parseFloat(num)
		want, err2 := strconv.ParseFloat(string(num), 64)
		if math.Float64bits(got) != math.Float64bits(want) || (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q: %v (%v), strconv %v (%v)", num, got, err1, want, err2)
		}
	})
}

// FuzzQuoted: quoted ends a string where its first quote is, and
// refuses it when a backslash or a control character comes before.
func FuzzQuoted(f *testing.F) {
	f.Add([]byte(`49590338271490256608559692538361571095921575989136588898","x"`))
	f.Add([]byte("dev-\x1f0000000\""))
	f.Add([]byte(`dev-000\\0000"`))
	f.Add([]byte(`é/ü"`))
	f.Fuzz(func(t *testing.T, s []byte) {
		end := bytes.IndexFunc(s, func(r rune) bool { return r == '"' || r == '\\' || r < 0x20 })
		want := end >= 0 && s[end] == '"'
		d := decoder{b: s}
		got, ok := d.quoted()
		if ok != want || ok && (!bytes.Equal(got, s[:end]) || d.i != end+1) {
			t.Fatalf("quoted(%q) = %q, %v (at %d); want the first %d bytes, %v", s, got, ok, d.i, end, want)
		}
	})
}

// FuzzDecimal: decimal reads what number and parseFloat read, to the
// same bit and the same end, or leaves the number to them.
func FuzzDecimal(f *testing.F) {
	for _, s := range []string{"1764266400.123,", "0", "0.5}", "01", "1.", "1.5e3", "-2", "123456789012345", "1234567890123456", "1.2.3", "12.x",
		"1.764266400123E9}", "1.76426640E9", "1E15", "1E16", "9.99999999999999E15", "5e-3", "1e-15", "1e-16", "1E+2", "1e0", "1e", "1E-", "1e0001", "1.5E9.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := decoder{b: []byte(s)}
		got, ok := d.decimal()
		if !ok {
			if d.i != 0 {
				t.Fatalf("%q: refused, but moved to %d", s, d.i)
			}
			return
		}
		ref := decoder{b: []byte(s)}
		num, _, err := ref.number()
		if err != nil {
			t.Fatalf("%q: decimal read %v, number refuses it: %v", s, got, err)
		}
		want, err := parseFloat(num)
		if err != nil || math.Float64bits(got) != math.Float64bits(want) || d.i != ref.i {
			t.Fatalf("%q: decimal %v to %d, number and parseFloat %v to %d (%v)", s, got, d.i, want, ref.i, err)
		}
	})
}
