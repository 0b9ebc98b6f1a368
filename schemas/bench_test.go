package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

// A ~200-byte record with six metrics, the shape the issue budgets for.
var benchRecord = []byte(`{"device_id":"keg-004217","ts":1732712345123,"seq":918273,"metrics":{"flow_lpm":3.214,"temp_c":4.125,"pressure_kpa":101.325,"battery_v":3.71,"rssi_dbm":-67,"valve_open":1}}`)

func BenchmarkDecode(b *testing.B) {
	d := NewDecoder(Options{})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		if _, err := d.Decode(benchRecord, ref); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecodeEncodingJSON is the naive baseline: encoding/json into a
// struct with a metrics map.
func BenchmarkDecodeEncodingJSON(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		var r struct {
			DeviceID string             `json:"device_id"`
			TS       int64              `json:"ts"`
			Seq      int64              `json:"seq"`
			Metrics  map[string]float64 `json:"metrics"`
		}
		if err := json.Unmarshal(benchRecord, &r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecodeShapes decodes records of several shapes in turn (the
// same metrics in different key orders, as different firmware might send
// them). Up to four shapes are remembered; a shard whose records come in
// more alternating shapes than that decodes every record with the full
// decoder (and relearns a shape after each).
func BenchmarkDecodeShapes(b *testing.B) {
	metrics := []string{`"flow_lpm":3.214`, `"temp_c":4.125`, `"pressure_kpa":101.325`, `"battery_v":3.71`, `"rssi_dbm":-67`, `"valve_open":1}`}
	for _, n := range []int{1, 4, 5} {
		var recs [][]byte
		for k := range n {
			m := append([]string(nil), metrics...)
			m[0], m[k] = m[k], m[0] // a different order per shape
			for i := range m {
				m[i] = strings.TrimSuffix(m[i], "}")
			}
			recs = append(recs, []byte(`{"device_id":"keg-004217","ts":1732712345123,"seq":918273,"metrics":{`+strings.Join(m, ",")+`}}`))
		}
		b.Run(fmt.Sprintf("shapes=%d", n), func(b *testing.B) {
			d := NewDecoder(Options{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := d.Decode(recs[i], ref); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(recs) {
					i = 0
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkDecodeFull is the full decoder alone (shapes off), what a
// record of no remembered shape costs; before shapes existed it was
// BenchmarkDecode.
func BenchmarkDecodeFull(b *testing.B) {
	d := NewDecoder(Options{})
	d.shapes.off = math.MaxInt
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		if _, err := d.Decode(benchRecord, ref); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
