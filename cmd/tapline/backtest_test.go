package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/versitygw"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/sinks/s3sink"
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

// TestBacktestFromS3: `tapline backtest s3://bucket/prefix -from -to`
// against versitygw reads the raw dataset the service lays out there and
// prints, byte for byte, what a backtest of the JSON lines that produced
// it prints, run after run; with its output piped it draws no progress.
func TestBacktestFromS3(t *testing.T) {
	srv, err := versitygw.Start(t.TempDir())
	server.Require(t, err) // a skip outside CI without `make local-stack`; in CI a failure
	defer srv.Stop()
	store, err := s3sink.New(versitygw.AWSConfig(srv.Endpoint), s3sink.Options{Bucket: "lake"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := store.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("lake")}); err != nil {
		t.Fatal(err)
	}
	// Four days of two pumps every 5 minutes; pump-1 steps up on day 3.
	dir := t.TempDir()
	var jsonl []byte
	dec := schemas.NewDecoder(schemas.Options{})
	t0 := time.Date(2014, 4, 1, 0, 0, 0, 0, time.UTC)
	for h := range 96 {
		raw, _ := parquet.NewRaw(parquet.Options{})
		for m := 0; m < 60; m += 5 {
			at := t0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
			for _, dev := range []string{"pump-1", "pump-2"} {
				v := 10 + (h*7+m)%5
				if dev == "pump-1" && h >= 60 {
					v += 40
				}
				line := fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"value":%d}}`, dev, at.UnixMilli(), v)
				jsonl = append(append(jsonl, line...), '\n')
				rec, err := dec.Decode(line, 0)
				if err != nil {
					t.Fatal(err)
				}
				raw.Append(rec, 0, "shardId-000000000000", fmt.Sprint(h*100+m))
			}
		}
		data, err := raw.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		key, _ := layout.Key("tapline", layout.Raw, t0.Add(time.Duration(h)*time.Hour).UnixMilli(), "shardId-000000000000", fmt.Sprint(h*100), fmt.Sprint(h*100+55), "parquet")
		if _, err := store.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "pumps.jsonl"), jsonl, 0o644)
	os.WriteFile(filepath.Join(dir, "rules.yml"), []byte("rules:\n  - {name: step, kind: cusum, metric: value, window: 1h, z: 5, drift: 1}\n"), 0o644)

	bin := binary(t, ".")
	run := func(input string) string {
		cmd := exec.Command(bin, "backtest", "-rules", filepath.Join(dir, "rules.yml"), "-s3-endpoint", srv.Endpoint,
			"-from", "2014-04-02", "-to", "2014-04-04T12:00:00Z", "-json", input)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+versitygw.AccessKey, "AWS_SECRET_ACCESS_KEY="+versitygw.SecretKey, "AWS_REGION="+versitygw.Region)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() != 0 {
			t.Fatalf("backtest %s: %v\n%s%s", input, err, out, stderr.String())
		}
		return string(out)
	}
	fromS3 := run("s3://lake/tapline")
	if again := run("s3://lake/tapline"); again != fromS3 {
		t.Fatal("two runs on the same data differ")
	}
	if fromJSON := run(filepath.Join(dir, "pumps.jsonl")); fromJSON != fromS3 {
		t.Fatalf("S3:\n%s\nJSON lines:\n%s", fromS3, fromJSON)
	}
	// Compacted, through the service's configuration on real S3
	// (versitygw): the backtest reads the files the views show and
	// answers the same. Two runs: the second deletes what the first
	// replaced.
	for range 2 {
		cmd := exec.Command(bin, "compact", "-before", "2014-04-03T00:00:00Z")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+versitygw.AccessKey, "AWS_SECRET_ACCESS_KEY="+versitygw.SecretKey, "AWS_REGION="+versitygw.Region,
			"TAPLINE_STREAM=unused", "TAPLINE_S3_BUCKET=lake", "TAPLINE_S3_PREFIX=tapline", "TAPLINE_ENDPOINTS_S3="+srv.Endpoint)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), " 0 partitions failed") {
			t.Fatalf("compact: %v\n%s", err, out)
		}
	}
	if landing, _ := store.List(ctx, "tapline/raw/dt=2014-04-02/"); len(landing) != 0 {
		t.Fatalf("landing files of a compacted day: %v", landing)
	}
	if compacted, _ := store.List(ctx, "tapline/compacted/raw/dt=2014-04-02/"); len(compacted) != 24 {
		t.Fatalf("%d compacted files for a day", len(compacted))
	}
	if after := run("s3://lake/tapline"); after != fromS3 {
		t.Fatalf("backtest after compaction:\n%s\nbefore:\n%s", after, fromS3)
	}
	var rep struct {
		Records uint64
		Alerts  []struct {
			Device string `json:"device_id"`
		}
	}
	json.Unmarshal([]byte(fromS3), &rep)
	if rep.Records != 2*288*5/2 || len(rep.Alerts) == 0 || rep.Alerts[0].Device != "pump-1" {
		t.Fatalf("want 2.5 days of both pumps and pump-1's step: %d records, %+v", rep.Records, rep.Alerts)
	}
}
