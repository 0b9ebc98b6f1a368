package getrecords

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/tapline/tapline/deploy/local/memkinesis"
)

// sameAsStd: decode64, and decodeQuanta alone whatever the length,
// decode what StdEncoding decodes, to the same bytes, and refuse the rest
// (line breaks too, which StdEncoding skips).
func sameAsStd(t *testing.T, src []byte) {
	t.Helper()
	sameAsStdBy(t, "decode64", decode64, src)
	if len(src)%4 == 0 {
		sameAsStdBy(t, "decodeQuanta", decodeQuanta, src)
	}
}

func sameAsStdBy(t *testing.T, name string, decode func(dst, src []byte) (int, bool), src []byte) {
	t.Helper()
	want, err := base64.StdEncoding.DecodeString(string(src))
	dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, ok := decode(dst, src)
	switch {
	case ok && bytes.ContainsAny(src, "\r\n"):
		t.Fatalf("%s %q: decoded a line break, which JSON and the SDK refuse", name, src)
	case ok && err != nil:
		t.Fatalf("%s %q: decoded %q, StdEncoding refuses it: %v", name, src, dst[:n], err)
	case ok && !bytes.Equal(dst[:n], want):
		t.Fatalf("%s %q: decoded %q, StdEncoding %q", name, src, dst[:n], want)
	case !ok && err == nil && !bytes.ContainsAny(src, "\r\n"):
		t.Fatalf("%s %q: refused, StdEncoding decodes %q", name, src, want)
	}
}

func TestDecode64(t *testing.T) {
	for _, s := range []string{
		"", "QQ==", "QUI=", "QUJD", "QUJDRA==", "QUJDREVG", "QUJDREVGRw==", "QR==", // trailing bits StdEncoding ignores
		"QQ", "QQ=", "Q===", "QQ==QUJD", "QUJD\nREVG", "QUJDREV\n", "QU\"D", "QU\\D", "QUJD REVG", "-_-_",
	} {
		sameAsStd(t, []byte(s))
	}
	for n := range 200 { // every length through both decoders' steps and their tails
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*37 + n)
		}
		enc := []byte(base64.StdEncoding.EncodeToString(b))
		sameAsStd(t, enc)
		// Long payloads with what the vector decoder leaves to
		// encoding/base64: line breaks (four, so the length stays whole
		// quanta), padding and a character outside the alphabet, early
		// and in the tail.
		for _, at := range []int{0, len(enc) / 2, len(enc) - 6} {
			if at < 0 {
				continue
			}
			for _, bad := range []string{"\n\n\r\n", "====", "QQ==", "\"", "-"} {
				x := append(append(append([]byte(nil), enc[:at]...), bad...), enc[at:]...)
				sameAsStd(t, x)
				y := append(append(append([]byte(nil), enc[:at]...), bad...), enc[min(at+len(bad), len(enc)):]...)
				sameAsStd(t, y) // over the payload's own characters
			}
		}
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

// BenchmarkDecode64 sets simdMin: where the vector decoder overtakes
// decodeQuanta.
func BenchmarkDecode64(b *testing.B) {
	for _, chars := range []int{32, 48, 64, 96, 384} {
		src := []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("tapline payload "), 18)))[:chars]
		dst := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
		for _, c := range []struct {
			name   string
			decode func(dst, src []byte) (int, bool)
		}{
			{"stdlib", func(dst, src []byte) (int, bool) { n, err := base64.StdEncoding.Decode(dst, src); return n, err == nil }},
			{"decodeQuanta", decodeQuanta},
			{"decode64", decode64},
		} {
			b.Run(c.name+"/chars="+strconv.Itoa(chars), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				for b.Loop() {
					c.decode(dst, src)
				}
			})
		}
	}
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
		for _, long := range []bool{false, true} {
			d := decoder{b: s}
			got, ok := d.quoted(long)
			if ok != want || ok && (!bytes.Equal(got, s[:end]) || d.i != end+1) {
				t.Fatalf("quoted(%q, %v) = %q, %v (at %d); want the first %d bytes, %v", s, long, got, ok, d.i, end, want)
			}
		}
	})
}

// TestQuotedLong: the 32-byte steps and the eight-byte ones stop at the
// same byte, each kind of byte at every position of the first steps.
func TestQuotedLong(t *testing.T) {
	for _, c := range []byte{'"', '\\', 0x00, 0x1f} {
		for at := range 100 {
			s := append(bytes.Repeat([]byte("7"), at), c)
			s = append(s, bytes.Repeat([]byte{' ', 0x20, 0x7f, 0x80, 0xff}, 20)...)
			s = append(s, '"')
			for _, long := range []bool{false, true} {
				d := decoder{b: s}
				got, ok := d.quoted(long)
				if want := c == '"'; ok != want || ok && (len(got) != at || d.i != at+1) {
					t.Fatalf("%q at %d, long %v: %d bytes, %v (at %d)", c, at, long, len(got), ok, d.i)
				}
			}
		}
	}
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

// BenchmarkQuoted: a record's strings scanned for their end, eight bytes
// a step and (long) 32 where the CPU can: why only sequence numbers take
// the vector scan.
func BenchmarkQuoted(b *testing.B) {
	for _, s := range []struct{ name, text string }{
		{"key", `SequenceNumber":`},
		{"seq", `49590338271490256608559692538361571095921575989136581000"`},
		{"partition-key", `dev-1234"`},
	} {
		buf := []byte(s.text + strings.Repeat(" ", 32))
		for _, long := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/long=%v", s.name, long), func(b *testing.B) {
				d := decoder{b: buf}
				for b.Loop() {
					d.i = 0
					d.quoted(long)
				}
			})
		}
	}
}

// BenchmarkDecodeAnswer: a 10,000-record answer shaped as Kinesis sends
// them (keg telemetry payloads, 56-digit sequence numbers, arrival times
// as Java writes them) decoded into the buffers of the one before, as a
// shard that releases its records has it: the decoder alone, without
// the SDK's middleware or the body's read.
func BenchmarkDecodeAnswer(b *testing.B) {
	var recs []rec
	for i := range 10_000 {
		recs = append(recs, rec{Data: fmt.Appendf(nil, `{"device_id":"keg-%04d","ts":%d,"seq":%d,"metrics":{"temp_c":%d.%d,"flow_lpm":%d.25,"pressure_kpa":101.3,"door_open":0}}`, i%1000, 1764266400000+int64(i)*10, i, 3+i%5, i%10, i%30),
			PartitionKey: fmt.Sprintf("keg-%04d", i%1000), SequenceNumber: "4959033827149025660855969253836157109592157598913658" + strconv.Itoa(1000+i),
			ApproximateArrivalTimestamp: memkinesis.KinesisTime(1764266400_123 + int64(i))})
	}
	raw := response(recs, "AAAA", 0)
	var out kinesis.GetRecordsOutput
	a := new(answer)
	sh, err := decode(raw, &out, nil, a)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if sh, err = decode(raw, &out, &sh, a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
