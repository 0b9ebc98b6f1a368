package backtest

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// BenchmarkJSONLines is a backtest from JSON lines as devices send them,
// in memory (as ReadPaths has them after reading a file): parsing
// (decode for device and time), ordering and the replay through the
// pipeline with the default rules. Input: NAB's 107,596 readings as JSON
// lines, ten copies under different device ids (1.08M records), so the
// ordering has work to do. Issue 15's goal: 1M records/s on one core
// (-cpu 1).
func BenchmarkJSONLines(b *testing.B) {
	readings, err := ReadPaths([]string{filepath.Join("testdata", "nab-train")})
	if err != nil {
		b.Fatal(err)
	}
	var in bytes.Buffer
	for pass := range 10 {
		for _, r := range readings {
			fmt.Fprintf(&in, "{\"device_id\":\"%s-%d\",%s\n", r.Device, pass, r.Data[bytes.IndexByte(r.Data, ',')+1:])
		}
	}
	data := in.Bytes()
	cfg := rules.Default()
	specs, err := cfg.Specs()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		rs := ParseJSONLines(data)
		res, err := Run(rs, pipeline.Options{Windows: windows.Options{Specs: specs}, Rules: cfg})
		if err != nil || res.Stats.Accepted != uint64(len(rs)) {
			b.Fatalf("%v, %+v", err, res.Stats)
		}
		n += len(rs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
