package service

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The example configuration the README points at loads as it is.
func TestExampleConfigLoads(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	t.Chdir(root) // rules_file is relative to the repository
	c, err := Load("deploy/local/tapline.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Stream != "telemetry" || c.Endpoints.Kinesis != "http://127.0.0.1:4567" || c.KCL.ShardSync != time.Second || len(c.Pipeline.Windows.Specs) != 2 ||
		c.Pipeline.MaxAhead != DefaultMaxAhead {
		t.Fatalf("loaded %+v", c)
	}
}

func TestEnvironmentOverridesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("stream: a\ns3: {bucket: b}\nkcl: {shard_sync: 1s}\n"), 0o644)
	c, err := Load(path, []string{"TAPLINE_STREAM=env-stream", "TAPLINE_KCL_SHARD_SYNC=250ms", "TAPLINE_WINDOWS=1m, 10m/5m",
		"TAPLINE_QUANTILES=true", "TAPLINE_KCL_MAX_RECORDS=500", "TAPLINE_ENDPOINTS_S3=http://127.0.0.1:1", "TAPLINE_MAX_AHEAD=2s", "OTHER=x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Stream != "env-stream" || c.S3.Bucket != "b" || c.KCL.ShardSync != 250*time.Millisecond || !c.Pipeline.Windows.Quantiles ||
		c.KCL.MaxRecords != 500 || fmt.Sprint(c.Pipeline.Windows.Specs) != "[1m 10m/5m]" || c.Endpoints.S3 != "http://127.0.0.1:1" || c.Pipeline.MaxAhead != 2*time.Second {
		t.Fatalf("got %+v", c)
	}
}

func TestBadConfigSaysWhatAndWhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("stream: a\ns3: {bucket: b}\nwindowz: [1m]\n"), 0o644)
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "windowz") {
		t.Errorf("unknown key: %v", err)
	}
	_, err := Load("", []string{"TAPLINE_SHUTDOWN_TIMEOUT=5m", "TAPLINE_WINDOWS=1m,7x", "TAPLINE_INITIAL_POSITION=OLDEST", "TAPLINE_ENDPOINTS_SNS=localhost:4100", "TAPLINE_MAX_AHEAD=-1s"})
	for _, want := range []string{"stream: required", "s3.bucket: required", "shutdown_timeout", "windows", "initial_position", "endpoints.sns", "max_ahead"} {
		if err == nil || !strings.Contains(err.Error(), "config: "+want) {
			t.Errorf("error %v does not report %q", err, want)
		}
	}
	if _, err := Load("", []string{"TAPLINE_KCL_SHARD_SYNC=soon"}); err == nil || !strings.Contains(err.Error(), `TAPLINE_KCL_SHARD_SYNC="soon"`) {
		t.Errorf("bad duration: %v", err)
	}
}

func TestReadyzFollowsTheLeases(t *testing.T) {
	var ready atomic.Bool
	srv := httptest.NewServer(Handler(ready.Load, prometheus.NewRegistry()))
	defer srv.Close()
	code := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code("/healthz") != 200 || code("/readyz") != 503 || code("/metrics") != 200 {
		t.Fatal("before any lease: want healthz 200, readyz 503, metrics 200")
	}
	ready.Store(true)
	if code("/readyz") != 200 {
		t.Fatal("with a lease: readyz should be 200")
	}
}

// The file decodes straight into the packages' option types, and the
// packages' defaults fill what neither the file nor the environment set.
func TestConfigDecodesIntoOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte(`stream: a
s3: {bucket: b}
windows: [1m, 15m/5m]
initial_position: AT_TIMESTAMP
initial_timestamp: 2026-11-27T10:00:00Z
max_record_bytes: 1000
batch: {max_rows: 7}
`), 0o644)
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	specs := c.Pipeline.Windows.Specs
	if len(specs) != 2 || specs[1].Size != 15*time.Minute || specs[1].Slide != 5*time.Minute ||
		!c.InitialTimestamp.Equal(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)) ||
		c.Pipeline.Decode.MaxRecordBytes != 1000 || c.Batch.MaxRows != 7 {
		t.Fatalf("decoded %+v", c.Options)
	}
	if c.KCL.ShardSync != time.Second || c.Batch.MaxBytes != 256<<20 || c.Pipeline.Windows.SeriesTTL != time.Hour || c.Pipeline.Decode.MaxMetrics != 256 {
		t.Fatalf("package defaults not applied: %+v", c.Options)
	}
	os.WriteFile(path, []byte("stream: a\ns3: {bucket: b}\nwindows: [1m, 7x]\n"), 0o644)
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), `window "7x"`) {
		t.Errorf("bad window spec in the file: %v", err)
	}
	_, err = Load("", []string{"TAPLINE_STREAM=a", "TAPLINE_S3_BUCKET=b", "TAPLINE_BATCH_MAX_ROWS=-1", "TAPLINE_INITIAL_POSITION=AT_TIMESTAMP", "TAPLINE_INITIAL_TIMESTAMP="})
	for _, want := range []string{"config: batch.max_rows: -1 is negative", "config: initial_timestamp: AT_TIMESTAMP needs"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %q", err, want)
		}
	}
}

// An unset max_series follows the task's memory: half of it at
// BytesPerSeries a series, shared by the leases a task may hold. The
// stack's 4 GiB task gets 3.58M series a shard, where the windows
// package's 10M default would take 6 GB.
func TestMaxSeriesFromMemory(t *testing.T) {
	defer func(f func() int64) { memoryLimit = f }(memoryLimit)
	env := []string{"TAPLINE_STREAM=a", "TAPLINE_S3_BUCKET=b"}
	for _, tc := range []struct {
		memory int64
		env    []string
		want   int
	}{
		{4 << 30, nil, 3_579_139},
		{4 << 30, []string{"TAPLINE_KCL_MAX_LEASES=4"}, 894_784},
		{4 << 30, []string{"TAPLINE_MAX_SERIES=1000"}, 1000},
		{0, nil, 10_000_000}, // no limit known: the windows package's default
	} {
		memoryLimit = func() int64 { return tc.memory }
		c, err := Load("", append(env, tc.env...))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Pipeline.Windows.MaxSeries; got != tc.want {
			t.Errorf("memory %d, %v: max_series %d, want %d", tc.memory, tc.env, got, tc.want)
		}
	}
}

// TestDefaultRulesAddTheirWindows: rules_file: default (here from the
// environment) adds the windows the default rules read to those
// configured, once.
func TestDefaultRulesAddTheirWindows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("stream: a\ns3: {bucket: b}\nwindows: [1m]\n"), 0o644)
	c, err := Load(path, []string{"TAPLINE_RULES_FILE=default"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Pipeline.Windows.Specs); got != "[1m 1h]" {
		t.Fatalf("windows %s, want [1m 1h]", got)
	}
}

// TestSampleHeap: the heap profile is sampled only when pprof can serve
// it.
func TestSampleHeap(t *testing.T) {
	defer func(r int) { runtime.MemProfileRate = r }(runtime.MemProfileRate)
	sampleHeap(false)
	if runtime.MemProfileRate != 0 {
		t.Fatalf("pprof off: MemProfileRate %d", runtime.MemProfileRate)
	}
	sampleHeap(true)
	if runtime.MemProfileRate != defaultMemProfileRate {
		t.Fatalf("pprof on: MemProfileRate %d", runtime.MemProfileRate)
	}
}
