package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// reference decodes with encoding/json and applies the documented contract.
// It is the slow, obviously right version the Decoder must agree with.
func reference(data []byte, refMs int64) (dev string, ts int64, seq int64, metrics map[string]float64, ok bool) {
	var top map[string]json.RawMessage
	if len(data) > DefaultMaxRecordBytes || json.Unmarshal(data, &top) != nil || top == nil || !distinctKeys(data) {
		return
	}
	metrics = map[string]float64{}
	seq = -1
	num := func(raw json.RawMessage) (float64, bool) {
		if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
			return 0, false
		}
		var v float64
		if json.Unmarshal(raw, &v) != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, false
		}
		return v, true
	}
	for k, raw := range top {
		switch k {
		case "device_id":
			if json.Unmarshal(raw, &dev) != nil || !ValidDeviceID(dev) {
				return
			}
		case "ts":
			var s string
			if json.Unmarshal(raw, &s) == nil {
				t, err := time.Parse(time.RFC3339Nano, s)
				// time.Parse takes a one-digit hour and a comma before
				// the fraction; RFC 3339 (and the decoder) do not.
				if err != nil || len(s) < 14 || s[13] != ':' || strings.ContainsRune(s, ',') {
					return
				}
				ts = t.UnixMilli()
			} else if v, good := num(raw); good && v == math.Trunc(v) {
				ts = int64(v)
			} else {
				return
			}
		case "seq":
			v, good := num(raw)
			if !good || v != math.Trunc(v) || v < 0 || v > 1<<53 {
				return
			}
			seq = int64(v)
		case "metrics":
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil || m == nil {
				return
			}
			for name, raw := range m {
				v, good := num(raw)
				if !good || !ValidMetricName(name) {
					return
				}
				if _, dup := metrics[name]; dup {
					return
				}
				metrics[name] = v
			}
		default:
			if v, good := num(raw); good {
				if !ValidMetricName(k) {
					return
				}
				if _, dup := metrics[k]; dup {
					return
				}
				metrics[k] = v
			}
		}
	}
	if _, has := top["ts"]; !has || dev == "" || len(metrics) == 0 || len(metrics) > DefaultMaxMetrics || ts < 0 || ts > maxTime {
		return
	}
	if refMs > 0 && ts > refMs+DefaultMaxFutureSkew.Milliseconds() {
		return
	}
	return dev, ts, seq, metrics, true
}

// distinctKeys reports whether the record repeats no key where
// encoding/json's keeping the last would change what the record says,
// and no value nests deeper than the decoder allows (maxDepth
// containers). A repeated key is one of those if it is reserved
// (device_id, ts, seq, metrics, readings), a metric's name inside
// "metrics", or a key whose earlier value was a number (a metric the
// later value would shadow). A field tapline ignores may repeat: both
// values are ignored, or the last is a number and a metric either way.
func distinctKeys(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	reserved := map[string]bool{"device_id": true, "ts": true, "seq": true, "metrics": true, "readings": true}
	// walk reads one value; number reports whether it was a number.
	var walk func(depth int, inMetrics bool) (ok, number bool)
	walk = func(depth int, inMetrics bool) (ok, number bool) {
		tok, err := dec.Token()
		if err != nil {
			return false, false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if depth > maxDepth {
				return false, false
			}
			seen := map[string]bool{} // key -> an earlier value was a number
			for dec.More() {
				if tok == json.Delim('{') {
					kt, err := dec.Token()
					if err != nil {
						return false, false
					}
					k, _ := kt.(string)
					wasNumber, again := seen[k]
					if again && (inMetrics || depth == 0 && (reserved[k] || wasNumber)) {
						return false, false
					}
					ok, number := walk(depth+1, depth == 0 && k == "metrics")
					if !ok {
						return false, false
					}
					seen[k] = wasNumber || number
				} else if ok, _ := walk(depth+1, false); !ok {
					return false, false
				}
			}
			_, err := dec.Token()
			return err == nil, false
		}
		_, number = tok.(float64)
		return true, number
	}
	ok, _ := walk(0, false)
	return ok
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"device_id":"keg-0042","ts":1732712345123,"metrics":{"flow_lpm":3.2,"temp_c":4.1}}`,
		`{"device_id":"k","ts":"2024-11-27T12:59:05.123+01:00","seq":3,"v":-1.5e-7,"tag":"x","o":{"a":[true,null]}}`,
		`{"device_id":"k\u002d1","ts":1732712345123,"metrics":{"a\u002eb":1e-3,"c":12345678901234567890}}`,
		`{"device_id":"k","ts":1732712345123,"v":NaN}`,
		`{"device_id":"k","ts":1732712345123,"v":1e400,"w":0.000000000000000000000001}`,
		`{"device_id":"../x","ts":1,"v":1}`,
		`{"device_id":"k","ts":1,"v":1,"v":"s"}`,
		`{"device_id":"k","ts":1,"v":1,"tag":"x","tag":"y"}`, // an ignored field twice: accepted
		`{"device_id":"k","ts":1,"v":1,"t":"x","t":2}`,       // ignored, then a metric: accepted
		`{"device_id":"k","ts":1,"ts":2,"v":1}`,
		`{"device_id":"0","ts":"2000-01-01T00:00:00+00:00","0":0,"":"","":{}}`, // found by CI's fuzzing
		`{"device_id":"0","ts":"2000-01-01T00:00:00,0000000000+00:00","0":0}`,  // found by CI's fuzzing: a comma before the fraction
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(Options{})
		r, err := d.Decode(data, ref)
		if err != nil {
			if r != nil {
				t.Fatal("record returned with an error")
			}
			// A rejection must be the reference's too.
			if _, _, _, _, ok := reference(data, ref); ok {
				t.Fatalf("Decoder rejected what the reference accepts: %v: %q", err, data)
			}
			return
		}
		if !ValidDeviceID(r.DeviceID) {
			t.Fatalf("accepted invalid device id %q", r.DeviceID)
		}
		if d.Batched() {
			return // FuzzReadings checks batches
		}
		for _, m := range r.Metrics {
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) || !ValidMetricName(m.Name) {
				t.Fatalf("accepted metric %q=%v", m.Name, m.Value)
			}
		}
		dev, ts, seq, metrics, ok := reference(data, ref)
		if !ok {
			t.Fatalf("Decoder accepted what encoding/json rejects: %q", data)
		}
		if string(r.DeviceID) != dev || r.Time != ts || r.Seq != seq || len(r.Metrics) != len(metrics) {
			t.Fatalf("disagree on %q:\ndecoder   %s %d %d %d metrics\nreference %s %d %d %v", data, r.DeviceID, r.Time, r.Seq, len(r.Metrics), dev, ts, seq, metrics)
		}
		for _, m := range r.Metrics {
			if v, has := metrics[string(m.Name)]; !has || v != m.Value {
				t.Fatalf("metric %s = %v, reference %v (%v) in %q", m.Name, m.Value, v, has, data)
			}
		}
	})
}

func FuzzRFC3339(f *testing.F) {
	for _, s := range []string{"2024-11-27T12:59:05.123Z", "2024-02-29T23:59:59.999999999-07:30", "1970-01-01T00:00:00+00:00", "0001-01-01T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, ok := parseRFC3339([]byte(s))
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("accepted %q, time.Parse: %v", s, err)
		}
		// Truncate toward minus infinity like our parser, not toward zero
		// like UnixMilli.
		w := want.Unix()*1000 + int64(want.Nanosecond()/1e6)
		if ms != w {
			t.Fatalf("%q = %d, time.Parse %d", s, ms, w)
		}
	})
}

// deadLetterJSON is the dead letter's JSON form as encoding/json writes
// it: what AppendJSON must equal.
type deadLetterJSON struct {
	Reason     string `json:"reason"`
	Error      string `json:"error"`
	Shard      string `json:"shard"`
	Sequence   string `json:"sequence"`
	ArrivalMs  int64  `json:"arrival_ms"`
	Data       string `json:"data,omitempty"`
	DataBase64 string `json:"data_base64,omitempty"`
}

// FuzzDeadLetterJSON: AppendJSON writes what encoding/json writes for the
// dead letter's JSON form.
func FuzzDeadLetterJSON(f *testing.F) {
	f.Add(uint8(ReasonLate), `late: "event" <time> & more`, "shardId-000000000001", "4959033827149025", int64(1764266400123), []byte(`{"device_id":"keg-1","ts":1}`))
	f.Add(uint8(ReasonMalformedJSON), "bad\x00byte\n\t\u2028é\xff", "", "", int64(-1), []byte{0xff, 0, 1})
	f.Add(uint8(0), "", "s", "1", int64(0), []byte(nil))
	f.Fuzz(func(t *testing.T, reason uint8, msg, shard, seq string, arrival int64, data []byte) {
		d := DeadLetter{Reason: Reason(reason), Error: msg, Shard: shard, Sequence: seq, Arrival: arrival, Data: data}
		want := deadLetterJSON{Reason: d.Reason.String(), Error: msg, Shard: shard, Sequence: seq, ArrivalMs: arrival}
		if utf8.Valid(data) {
			want.Data = string(data)
		} else {
			want.DataBase64 = base64.StdEncoding.EncodeToString(data)
		}
		wantJSON, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.AppendJSON([]byte("x")); string(got) != "x"+string(wantJSON) {
			t.Fatalf("AppendJSON\n%s\nencoding/json\n%s", got[1:], wantJSON)
		}
		if got, err := json.Marshal(&d); err != nil || string(got) != string(wantJSON) {
			t.Fatalf("json.Marshal(&d) = %s, %v", got, err)
		}
	})
}
