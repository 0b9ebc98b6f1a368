package schemas

import (
	"encoding/json"
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
