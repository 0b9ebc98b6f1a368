package schemas

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const ref = 1732712400000 // 2024-11-27T13:00:00Z, the arrival time used below

func TestDecodeAccepts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		device  string
		ts      int64
		seq     int64
		metrics string // name=value pairs in record order
	}{
		{`{"device_id":"keg-0042","ts":1732712345123,"metrics":{"flow_lpm":3.2,"temp_c":4.1}}`,
			"keg-0042", 1732712345123, -1, "flow_lpm=3.2 temp_c=4.1"},
		{` { "ts" : "2024-11-27T12:59:05.123Z" , "device_id" : "a:b_c-D" , "temp_c" : -0.5e1 } `,
			"a:b_c-D", 1732712345123, -1, "temp_c=-5"},
		{`{"device_id":"k","ts":"2024-11-27T13:59:05.1239+01:00","seq":7,"fw":"1.2","ok":true,"x":null,"o":{"a":[1,{"b":"c"}]},"v":1}`,
			"k", 1732712345123, 7, "v=1"},
		{`{"device_id":"k\u002d1","ts":1732712345123,"metrics":{"a\u002eb":1e-3},"c":12345678901234567890}`,
			"k-1", 1732712345123, -1, "a.b=0.001 c=1.2345678901234567e+19"},
		{`{"device_id":"k","ts":1.732712345123e12,"metrics":{},"n":0}`,
			"k", 1732712345123, -1, "n=0"},
	} {
		d := NewDecoder(Options{})
		r, err := d.Decode([]byte(tc.in), ref)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		var ms []string
		for _, m := range r.Metrics {
			ms = append(ms, fmt.Sprintf("%s=%v", m.Name, m.Value))
		}
		if string(r.DeviceID) != tc.device || r.Time != tc.ts || r.Seq != tc.seq || strings.Join(ms, " ") != tc.metrics {
			t.Errorf("%s:\ngot  %s %d %d %s\nwant %s %d %d %s", tc.in, r.DeviceID, r.Time, r.Seq, ms, tc.device, tc.ts, tc.seq, tc.metrics)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	big := `{"device_id":"k","ts":1,"pad":"` + strings.Repeat("x", 128<<10) + `","v":1}`
	for _, tc := range []struct {
		in     string
		reason Reason
	}{
		{``, ReasonMalformedJSON},
		{`[]`, ReasonMalformedJSON},
		{`{"device_id":"k","ts":1732712345123,"v":1`, ReasonMalformedJSON},
		{`{"device_id":"k","ts":1732712345123,"v":1}x`, ReasonMalformedJSON},
		{`{"device_id":"k","ts":1732712345123,"v":01}`, ReasonMalformedJSON},
		{`{"device_id":"k","ts":1732712345123,"v":1.}`, ReasonMalformedJSON},
		{`{"device_id":"k","ts":1732712345123,"s":"a` + "\n" + `b","v":1}`, ReasonMalformedJSON},
		{`{"device_id":"k","ts":1732712345123,"s":[-Infinity],"v":1}`, ReasonMalformedJSON},
		{`{"device_id":"../x","ts":1732712345123,"v":1,}`, ReasonMalformedJSON}, // syntax wins
		{`{"device_id":"k","ts":1732712345123,"s":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `,"v":1}`, ReasonMalformedJSON},
		{big, ReasonTooLarge},
		{`{"ts":1732712345123,"v":1}`, ReasonMissingDeviceID},
		{`{"device_id":"","ts":1732712345123,"v":1}`, ReasonInvalidDeviceID},
		{`{"device_id":"../x","ts":1732712345123,"v":1}`, ReasonInvalidDeviceID},
		{`{"device_id":"a/+/#","ts":1732712345123,"v":1}`, ReasonInvalidDeviceID},
		{`{"device_id":"$aws","ts":1732712345123,"v":1}`, ReasonInvalidDeviceID},
		{`{"device_id":"kеg","ts":1732712345123,"v":1}`, ReasonInvalidDeviceID}, // Cyrillic e
		{`{"device_id":"` + strings.Repeat("k", 129) + `","ts":1732712345123,"v":1}`, ReasonInvalidDeviceID},
		{`{"device_id":7,"ts":1732712345123,"v":1}`, ReasonInvalidDeviceID},
		{`{"device_id":"k","v":1}`, ReasonMissingTS},
		{`{"device_id":"k","ts":"yesterday","v":1}`, ReasonInvalidTS},
		{`{"device_id":"k","ts":1.5,"v":1}`, ReasonInvalidTS},
		{`{"device_id":"k","ts":-1,"v":1}`, ReasonInvalidTS},
		{`{"device_id":"k","ts":"2024-02-30T00:00:00Z","v":1}`, ReasonInvalidTS},
		{`{"device_id":"k","ts":1732713345123,"v":1}`, ReasonFutureTS},
		{`{"device_id":"k","ts":1732712345123}`, ReasonNoMetrics},
		{`{"device_id":"k","ts":1732712345123,"metrics":{}}`, ReasonNoMetrics},
		{`{"device_id":"k","ts":1732712345123,"metrics":{"v":"1"}}`, ReasonInvalidMetric},
		{`{"device_id":"k","ts":1732712345123,"metrics":[1]}`, ReasonInvalidMetric},
		{`{"device_id":"k","ts":1732712345123,"bad name":1}`, ReasonInvalidMetric},
		{`{"device_id":"k","ts":1732712345123,"v":NaN}`, ReasonNonFinite},
		{`{"device_id":"k","ts":1732712345123,"metrics":{"v":-Infinity}}`, ReasonNonFinite},
		{`{"device_id":"k","ts":1732712345123,"v":1e400}`, ReasonNonFinite},
		{`{"device_id":"k","ts":1732712345123,"v":1,"metrics":{"v":2}}`, ReasonDuplicateKey},
		{`{"device_id":"k","ts":1732712345123,"v":1,"v":"x"}`, ReasonDuplicateKey},
		{`{"device_id":"k","device_id":"k","ts":1732712345123,"v":1}`, ReasonDuplicateKey},
		{`{"device_id":"k","ts":1732712345123,"seq":-1,"v":1}`, ReasonInvalidSeq},
	} {
		d := NewDecoder(Options{})
		r, err := d.Decode([]byte(tc.in), ref)
		var de *Error
		if !errors.As(err, &de) {
			t.Errorf("%.80s: got record %v, err %v; want %s", tc.in, r, err, tc.reason)
			continue
		}
		if de.Reason != tc.reason {
			t.Errorf("%.80s: reason %s (%v), want %s", tc.in, de.Reason, err, tc.reason)
		}
		if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || len(msg) > 200 {
			t.Errorf("%.80s: error is not one short line: %q", tc.in, msg)
		}
	}
}

func TestDecodeTooManyMetrics(t *testing.T) {
	d := NewDecoder(Options{MaxMetrics: 2})
	_, err := d.Decode([]byte(`{"device_id":"k","ts":1,"a":1,"b":2,"c":3}`), 0)
	var de *Error
	if !errors.As(err, &de) || de.Reason != ReasonTooManyMetrics {
		t.Fatalf("err = %v, want too_many_metrics", err)
	}
}

// TestDecodeReusesMemory shows the steady state allocates nothing, for
// records with and without escapes, and for rejects of the common kinds
// only the error itself.
func TestDecodeZeroAlloc(t *testing.T) {
	d := NewDecoder(Options{})
	recs := [][]byte{
		[]byte(`{"device_id":"keg-0042","ts":1732712345123,"metrics":{"flow_lpm":3.2,"temp_c":4.1,"pressure_kpa":101.325,"battery":0.97,"rssi":-67,"door":0}}`),
		[]byte(`{"device_id":"keg\u002d7","ts":"2024-11-27T12:59:05.123Z","temp_c":4.123456789012345678,"fw":"1.2.3"}`),
	}
	allocs := testing.AllocsPerRun(1000, func() {
		for _, r := range recs {
			if _, err := d.Decode(r, ref); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocates %.1f times per run, want 0", allocs)
	}
}

func TestDeviceIDAndMetricName(t *testing.T) {
	for id, ok := range map[string]bool{"keg-0042": true, "A:b_c-9": true, "": false, "a.b": false, "a/b": false, "a b": false, "#": false, "+": false, "é": false} {
		if ValidDeviceID(id) != ok {
			t.Errorf("ValidDeviceID(%q) = %v", id, !ok)
		}
	}
	if !ValidMetricName("temp.c") || ValidMetricName("temp c") || ValidMetricName(strings.Repeat("m", 129)) {
		t.Error("ValidMetricName disagrees with [a-zA-Z0-9_.:-]{1,128}")
	}
}
