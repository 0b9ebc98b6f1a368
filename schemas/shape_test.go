package schemas

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
)

// sameResult reports how two decodes of one record differ, or "".
func sameResult(r1 *Record, e1 error, r2 *Record, e2 error) string {
	if (e1 == nil) != (e2 == nil) || (r1 == nil) != (r2 == nil) {
		return fmt.Sprintf("error %v vs %v", e1, e2)
	}
	if e1 != nil {
		var s1, s2 *Error
		if !errors.As(e1, &s1) || !errors.As(e2, &s2) || *s1 != *s2 {
			return fmt.Sprintf("error %v vs %v", e1, e2)
		}
		return ""
	}
	if !bytes.Equal(r1.DeviceID, r2.DeviceID) || r1.Time != r2.Time || r1.Seq != r2.Seq || len(r1.Metrics) != len(r2.Metrics) {
		return fmt.Sprintf("record %s %d %d %v vs %s %d %d %v", r1.DeviceID, r1.Time, r1.Seq, r1.Metrics, r2.DeviceID, r2.Time, r2.Seq, r2.Metrics)
	}
	for k := range r1.Metrics {
		m1, m2 := r1.Metrics[k], r2.Metrics[k]
		if !bytes.Equal(m1.Name, m2.Name) || math.Float64bits(m1.Value) != math.Float64bits(m2.Value) {
			return fmt.Sprintf("metric %d: %s=%v vs %s=%v", k, m1.Name, m1.Value, m2.Name, m2.Value)
		}
	}
	return ""
}

// withValues rebuilds learned with the values it held replaced by the
// pieces of repl (split at 0x1f; missing pieces keep the original value),
// so the result has learned's shape with other, possibly bad, values.
func withValues(d *Decoder, learned, repl []byte) []byte {
	pieces := bytes.Split(repl, []byte{0x1f})
	var out []byte
	prev := 0
	for k, v := range d.values {
		out = append(out, learned[prev:v.start]...)
		if k < len(pieces) && len(repl) > 0 {
			out = append(out, pieces[k]...)
		} else {
			out = append(out, learned[v.start:v.end]...)
		}
		prev = int(v.end)
	}
	return append(out, learned[prev:]...)
}

// FuzzShape holds the shape path equal to the full decoder: a decoder
// that has learned the shape of one record must decode a record of that
// shape, with any values, exactly as a fresh decoder does.
func FuzzShape(f *testing.F) {
	for _, s := range []struct{ learn, repl string }{
		{`{"device_id":"keg-0042","ts":1732712345123,"seq":3,"fw":"1.4.2","metrics":{"flow_lpm":3.2,"temp_c":4.1}}`, "\"keg-7\"\x1f1732712345999\x1f4\x1f\"x\"\x1f-0.5\x1f12e3"},
		{`{"device_id":"keg-0042","ts":1732712345123,"metrics":{"flow_lpm":3.2}}`, "\"k/1\"\x1f1\x1fNaN"},
		{`{"device_id":"k","ts":"2024-11-27T12:59:05.123Z","v":1,"o":{"a":[1]}}`, "\"k\"\x1f\"2024-11-27T12:59:06Z\"\x1f\"s\"\x1f7"},
		{` { "device_id" : "k" , "ts" : 1 , "v" : 1 } `, "\"k\\u002d1\"\x1f2\x1f1e400"},
		{`{"device_id":"k","ts":1,"metrics":{"a\u002eb":1,"c":2}}`, "\"k\"\x1f2\x1f3\x1f\"4\""},
		{`{"device_id":"k","ts":1,"v":1}`, "\"k\"\x1f99999999999999999\x1f1"},
		{`{"device_id":"k","ts":1,"v":1}`, "\"k\"\x1f1,\"v\":2\x1f1"},
	} {
		f.Add([]byte(s.learn), []byte(s.repl))
	}
	f.Fuzz(func(t *testing.T, learn, repl []byte) {
		d := NewDecoder(Options{})
		if _, err := d.Decode(learn, ref); err != nil {
			return
		}
		data := withValues(d, learn, repl)
		r1, e1 := d.Decode(data, ref)
		r2, e2 := NewDecoder(Options{}).Decode(data, ref)
		if diff := sameResult(r1, e1, r2, e2); diff != "" {
			t.Fatalf("learned %q, decoded %q: shape path and full decoder differ: %s", learn, data, diff)
		}
	})
}

func TestShapeIsUsed(t *testing.T) {
	d := NewDecoder(Options{})
	recs := []string{
		`{"device_id":"keg-1","ts":1732712345123,"metrics":{"flow_lpm":3.2,"temp_c":4.1}}`,
		`{"device_id":"keg-2","ts":1732712345124,"metrics":{"flow_lpm":3.3,"temp_c":4.2}}`,
		`{"device_id":"keg-3","ts":1732712345125,"metrics":{"flow_lpm":-1,"temp_c":5}}`,
	}
	for k, s := range recs {
		r, err := d.Decode([]byte(s), ref)
		if err != nil {
			t.Fatal(err)
		}
		if d.shapes.hits != uint64(k) {
			t.Fatalf("record %d: %d shape hits, want %d", k, d.shapes.hits, k)
		}
		r2, e2 := NewDecoder(Options{}).Decode([]byte(s), ref)
		if diff := sameResult(r, err, r2, e2); diff != "" {
			t.Fatal(diff)
		}
	}
	if d.shapes.hits != 2 {
		t.Fatalf("%d shape hits, want 2", d.shapes.hits)
	}
	// A bad value in a known shape gets the full decoder's error.
	_, err := d.Decode([]byte(`{"device_id":"keg/4","ts":1732712345125,"metrics":{"flow_lpm":-1,"temp_c":5}}`), ref)
	var se *Error
	if !errors.As(err, &se) || se.Reason != ReasonInvalidDeviceID {
		t.Fatalf("got %v, want an invalid device id", err)
	}
}

// TestShapesRotate: more shapes than the decoder keeps, in turn, still
// decode right and, once warm, without allocating.
func TestShapesRotate(t *testing.T) {
	var recs [][]byte
	for k := range maxShapes + 2 {
		recs = append(recs, fmt.Appendf(nil, `{"device_id":"d%d","ts":1732712345123,"m%d":%d.5}`, k, k, k))
	}
	d := NewDecoder(Options{})
	check := func() {
		for _, r := range recs {
			got, err := d.Decode(r, ref)
			want, werr := NewDecoder(Options{}).Decode(r, ref)
			if diff := sameResult(got, err, want, werr); diff != "" {
				t.Fatalf("%s: %s", r, diff)
			}
		}
	}
	check()
	check()
	if n := testing.AllocsPerRun(20, func() {
		for _, r := range recs {
			d.Decode(r, ref)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per round", n)
	}
	// The last maxShapes shapes in turn all hit.
	before := d.shapes.hits
	for range 3 {
		for _, r := range recs[2:] {
			if _, err := d.Decode(r, ref); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := d.shapes.hits - before; got != 3*maxShapes {
		t.Fatalf("%d shape hits for %d records of %d remembered shapes", got, 3*maxShapes, maxShapes)
	}
}

// TestShapesBackOff: records in more alternating shapes than are
// remembered make the decoder stop trying shapes for a while (and decode
// right); records of one shape never do.
func TestShapesBackOff(t *testing.T) {
	var recs [][]byte
	for k := range maxShapes + 2 {
		recs = append(recs, fmt.Appendf(nil, `{"device_id":"d%d","ts":1732712345123,"m%d":%d.5}`, k, k, k))
	}
	d := NewDecoder(Options{})
	for i := range shapeWindow {
		r := recs[i%len(recs)]
		got, err := d.Decode(r, ref)
		want, werr := NewDecoder(Options{}).Decode(r, ref)
		if diff := sameResult(got, err, want, werr); diff != "" {
			t.Fatalf("%s: %s", r, diff)
		}
	}
	if d.shapes.off != shapeBackOff {
		t.Fatalf("after a window of %d records in %d shapes: shapeOff %d, want %d", shapeWindow, len(recs), d.shapes.off, shapeBackOff)
	}
	hits := d.shapes.hits
	for i := range 100 {
		if _, err := d.Decode(recs[0], ref); err != nil {
			t.Fatal(err)
		}
		if d.shapes.off != shapeBackOff-1-i {
			t.Fatalf("shapeOff %d after %d records", d.shapes.off, i+1)
		}
	}
	if d.shapes.hits != hits {
		t.Fatal("shapes tried while backing off")
	}

	one := NewDecoder(Options{})
	for range 3 * shapeWindow {
		if _, err := one.Decode(recs[0], ref); err != nil {
			t.Fatal(err)
		}
	}
	if one.shapes.off != 0 || one.shapes.hits != 3*shapeWindow-1 {
		t.Fatalf("one shape: shapeOff %d, %d hits", one.shapes.off, one.shapes.hits)
	}
}
