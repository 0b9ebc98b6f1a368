package schemas

import (
	"errors"
	"slices"
	"testing"
)

// FuzzReadings holds each reading of a batched message to what the
// record of that one reading decodes to: the same time, seq and metrics,
// or the same reason.
func FuzzReadings(f *testing.F) {
	for _, s := range []string{
		`{"device_id":"keg-1","readings":[{"ts":1732712345123,"seq":1,"metrics":{"t":4.1}},{"ts":"2024-11-27T12:59:05Z","t":5,"x":"y"}]}`,
		`{"readings":[{"ts":1,"metrics":{"t":NaN}},{"metrics":{"t":1}},{"ts":2,"t":1,"t":2},3,{"ts":4,"device_id":"k"}],"device_id":"k"}`,
		`{"device_id":"k","readings":[],"fw":"1.2"}`,
		`{"device_id":"k","ts":1,"readings":[{"ts":1,"v":1}]}`,
		`{"device_id":"k","readings":[{"ts":1,"seq":1,"metrics":{"a":1,"b":2}},{"ts":2,"seq":2,"metrics":{"a":1.5,"b":-2}},{"ts":3,"seq":3,"metrics":{"a":NaN,"b":2}},{"ts":4,"seq":4,"metrics":{"a":1,"b":2,"c":3}},{"ts":5,"seq":5,"metrics":{"a":1,"b":2}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(Options{})
		env, err := d.Decode(data, ref)
		if err != nil || !d.Batched() {
			return
		}
		id := string(env.DeviceID)
		alone := NewDecoder(Options{})
		for n := 0; ; n++ {
			r, ok, err := d.NextReading()
			if !ok {
				break
			}
			if r != nil && (r.Reading != n || string(r.DeviceID) != id) {
				t.Fatalf("reading %d: index %d, device %q", n, r.Reading, r.DeviceID)
			}
			var se *Error
			if errors.As(err, &se) && se.Reason == ReasonInvalidReadings {
				continue // what a record of one reading cannot say
			}
			body := d.Reading()
			one := append([]byte(`{"device_id":"`+id+`"`), body[1:]...)
			if len(body) > 2 {
				one = append([]byte(`{"device_id":"`+id+`",`), body[1:]...)
			}
			want, werr := alone.Decode(one, ref)
			if (err == nil) != (werr == nil) {
				t.Fatalf("reading %d of %q: %v, alone %q: %v", n, data, err, one, werr)
			}
			if err != nil {
				var we *Error
				if errors.As(werr, &we); we.Reason != se.Reason {
					t.Fatalf("reading %d of %q: %v, alone: %v", n, data, err, werr)
				}
				continue
			}
			if r.Time != want.Time || r.Seq != want.Seq || !slices.EqualFunc(r.Metrics, want.Metrics, func(a, b Metric) bool {
				return string(a.Name) == string(b.Name) && a.Value == b.Value
			}) {
				t.Fatalf("reading %d of %q: %+v, alone %+v", n, data, *r, *want)
			}
		}
	})
}
