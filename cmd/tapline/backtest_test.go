package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBacktestCommand runs `tapline backtest` on a CSV with one step in
// it and a JSON lines file, with labels: the step is found, the JSON
// report counts every record, and a bad rules file is a one-line error.
func TestBacktestCommand(t *testing.T) {
	dir := t.TempDir()
	// Two days of 5-minute samples around 10, then a step to 100 at
	// 2014-04-02 16:00.
	lines := []string{"timestamp,value"}
	t0 := time.Date(2014, 4, 1, 0, 0, 0, 0, time.UTC)
	for m := 0; m < 48*60; m += 5 {
		v := 10 + m%3
		if m >= 40*60 {
			v = 100
		}
		lines = append(lines, fmt.Sprintf("%s,%d", t0.Add(time.Duration(m)*time.Minute).Format("2006-01-02 15:04:05"), v))
	}
	os.WriteFile(filepath.Join(dir, "pump_1.csv"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "more.jsonl"), []byte(`{"device_id":"pump-2","ts":"2014-04-01T00:00:00Z","metrics":{"value":1}}`+"\nnot json\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "rules.yml"), []byte("rules:\n  - {name: step, kind: zscore, metric: value, window: 1h, aggregate: mean, z: 4, clear_z: 2, warmup: 24}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "windows.json"), []byte(`{"x/pump_1.csv": [["2014-04-02 15:00:00", "2014-04-02 18:00:00"]]}`), 0o644)

	bin := binary(t, ".")
	out, err := exec.Command(bin, "backtest", "-rules", filepath.Join(dir, "rules.yml"), "-labels", filepath.Join(dir, "windows.json"), "-json", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, out)
	}
	var rep struct {
		Records, Accepted uint64
		Rejected          map[string]uint64
		Alerts            []struct{ State string }
		Score             struct {
			Windows, Detected int
			FalseAlarms       int `json:"false_alarms"`
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Records != uint64(len(lines)-1+2) || rep.Rejected["malformed_json"] != 1 || len(rep.Alerts) == 0 || rep.Alerts[0].State != "FIRING" ||
		rep.Score.Windows != 1 || rep.Score.Detected != 1 || rep.Score.FalseAlarms != 0 {
		t.Fatalf("report: %s", out)
	}
	text, err := exec.Command(bin, "backtest", "-rules", filepath.Join(dir, "rules.yml"), dir).Output()
	if err != nil || !strings.Contains(string(text), "FIRING   pump-1 value mean") {
		t.Fatalf("text: %v\n%s", err, text)
	}
	os.WriteFile(filepath.Join(dir, "bad.yml"), []byte("rules:\n  - {name: x, kind: zscore, metric: value, window: 1h, z: -1}\n"), 0o644)
	msg, err := exec.Command(bin, "backtest", "-rules", filepath.Join(dir, "bad.yml"), dir).CombinedOutput()
	if err == nil || strings.Count(strings.TrimSpace(string(msg)), "\n") != 0 || !strings.Contains(string(msg), "bad.yml:2") {
		t.Fatalf("bad rules: %v: %s", err, msg)
	}
}
