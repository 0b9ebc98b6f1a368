package service

import (
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
	if c.Stream != "telemetry" || c.Endpoints.Kinesis != "http://127.0.0.1:4567" || c.KCL.ShardSync != time.Second || len(c.Windows) != 2 ||
		c.MaxAhead != DefaultMaxAhead {
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
	if c.Stream != "env-stream" || c.S3.Bucket != "b" || c.KCL.ShardSync != 250*time.Millisecond || !c.Quantiles ||
		c.KCL.MaxRecords != 500 || strings.Join(c.Windows, "|") != "1m|10m/5m" || c.Endpoints.S3 != "http://127.0.0.1:1" || c.MaxAhead != 2*time.Second {
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
