package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows/rules"
)

// noiseRules group notifications by rule and make offline kegs fire.
const noiseRules = `route: {group_by: [rule], group_wait: 30s, group_interval: 5m}
inhibit:
  - {source: {rule: offline}, target: {rule: warm}, equal: [device]}
rules:
  - {name: offline, kind: missing, after: 2m, devices: "keg-0*"}
  - {name: warm, kind: threshold, metric: temp_c, window: 5m/1m, aggregate: mean, above: 8, clear: 6}
`

// TestNoiseControl runs `tapline run` on one shard with noiseRules: 100
// kegs report for 10 minutes and fall silent in the same minute (a
// sentinel keeps the watermark moving), and silences are managed with
// `tapline silence` while it runs. It checks the promises: the
// 100 offline alerts are 100 rows and one SNS message; a silenced keg's
// alerts are rows with state SUPPRESSED and reach no subscriber; a
// silence added and one expired while running are applied at recorded
// points, so S3 equals, byte for byte, an oracle reloading there.
func TestNoiseControl(t *testing.T) {
	e := newFaultEnv(t, 1)
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "noise.yml")
	if err := os.WriteFile(rulesFile, []byte(noiseRules), 0o644); err != nil {
		t.Fatal(err)
	}
	e.env = append(e.env, "TAPLINE_RULES_FILE="+rulesFile, "TAPLINE_RULES_RELOAD=0")
	silence := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(e.bin, append([]string{"silence"}, args...)...)
		cmd.Env = append(os.Environ(), e.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tapline silence %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	from := consumertest.Start.Add(-time.Hour).Format(time.RFC3339)
	// The first silence ended an hour ago in wall time: the service still
	// applies it (silences are kept a week past their end, for backlogs)
	// but it is no longer running. A fixed end would leave that week as
	// the days pass and fail the test.
	first := silence("add", "-match", "rule=warm", "-match", "device=keg-0003", "-start", from, "-until", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "-comment", "cooler maintenance", "-by", "ops")

	// The oracle starts with the rules and the silence the service starts with.
	ctx := context.Background()
	lake, err := e.st.S3Store(ctx, "lake")
	if err != nil {
		t.Fatal(err)
	}
	b, err := lake.Get(ctx, layout.Silences("tapline", "faults")+first+".json")
	if err != nil {
		t.Fatal(err)
	}
	var s1 rules.Silence
	if err := json.Unmarshal(b, &s1); err != nil {
		t.Fatal(err)
	}
	cfg, err := rules.Parse(rulesFile, []byte(noiseRules))
	if err != nil {
		t.Fatal(err)
	}
	if e.rules, err = cfg.WithSilences([]rules.Silence{s1}); err != nil {
		t.Fatal(err)
	}

	// Objects planted where silences live by someone who should not:
	// refused one by one, the service starts and the real one applies.
	for name, body := range map[string]string{
		"s-bad-glob.json":  `{"id":"s-bad-glob","matchers":{"device":"["},"starts":"2026-11-20T00:00:00Z","ends":"2026-11-21T00:00:00Z"}`,
		"s-extra.json":     `{"id":"s-extra","matchers":{"rule":"*"},"starts":"2026-11-20T00:00:00Z","ends":"2026-11-21T00:00:00Z","admin":true}`,
		"s-elsewhere.json": `{"id":"s-other","matchers":{"rule":"*"},"starts":"2026-11-20T00:00:00Z","ends":"2026-11-21T00:00:00Z"}`,
	} {
		if _, err := lake.Put(ctx, layout.Silences("tapline", "faults")+name, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}

	e.put(consumertest.Telemetry(100, 0, 60))
	var sentinel []stack.Record
	for tick := 60; tick < 90; tick++ {
		ts := consumertest.Start.Add(time.Duration(tick) * 10 * time.Second)
		sentinel = append(sentinel, stack.Record{Key: "sentinel", Data: fmt.Appendf(nil, `{"device_id":"sentinel","ts":%d,"metrics":{"temp_c":4}}`, ts.UnixMilli())})
	}
	e.put(sentinel)
	w := e.start("w")
	waitFor(t, "the first batches", 60*time.Second, func() bool { return strings.Count(w.logs(), `"batch committed"`) >= 1 })
	if n := strings.Count(w.logs(), `"msg":"silence refused"`); n != 3 {
		t.Fatalf("%d planted silences refused, want 3", n)
	}

	// A silence added while running, then expired: each a recorded reload.
	second := silence("add", "-match", "rule=warm", "-match", "device=keg-0053", "-start", from, "-until", time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339), "-comment", "probe swap")
	w.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the silence reloaded", 30*time.Second, func() bool { return strings.Count(w.logs(), `"msg":"rules reloaded"`) == 1 })
	// list shows the silences still running (the first ended, in wall
	// time: the telemetry is from the past), list -all every one.
	if list, all := silence("list"), silence("list", "-all"); strings.Contains(list, first) || !strings.Contains(list, second) ||
		!strings.Contains(all, first) || !strings.Contains(all, "device=keg-0003,rule=warm") {
		t.Fatalf("silence list:\n%s\nsilence list -all:\n%s", list, all)
	}
	silence("expire", second)
	if out := silence("list"); strings.Contains(out, second) || !strings.Contains(silence("list", "-all"), second) {
		t.Fatalf("after expire: list\n%s", out)
	}
	w.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the expiry reloaded", 30*time.Second, func() bool { return strings.Count(w.logs(), `"msg":"rules reloaded"`) == 2 })
	e.put(consumertest.Heartbeat(100))

	// kinesalite's answers take tapline's GetRecords decoder, not the SDK's.
	_, metrics := w.get("/metrics")
	if !regexp.MustCompile(`(?m)^tapline_getrecords_fast_total [1-9]`).MatchString(metrics) || !strings.Contains(metrics, "tapline_getrecords_sdk_total 0\n") {
		t.Errorf("GetRecords decoders: %v", regexp.MustCompile(`(?m)^tapline_getrecords_.*$`).FindAllString(metrics, -1))
	}

	reloads, err := journal.Reloads(ctx, lake, "tapline", "faults")
	if err != nil || len(reloads) != 2 {
		t.Fatalf("reloads %v, %v", reloads, err)
	}
	want := e.oracle() // with those reloads, and any cut recorded
	e.waitAcked(want, 120*time.Second)
	rep := e.verify(want)
	for k, b := range want.Objects.Data("tapline") {
		if got, err := lake.Get(ctx, k); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s differs from the oracle's (%v)", k, err)
		}
	}

	// 100 offline rows, one message.
	offline := map[int64]int{}
	suppressed := map[string]int{}
	for _, a := range want.Alerts {
		if a.Rule == "offline" && a.State == rules.Firing {
			offline[a.At]++
		}
		if a.State == "SUPPRESSED" {
			suppressed[a.Device]++
		}
	}
	if len(offline) != 1 || offline[maxKey(offline)] != 100 {
		t.Fatalf("offline FIRING rows by event time: %v, want 100 at one time", offline)
	}
	waitFor(t, "the notifications at the subscriber", 30*time.Second, func() bool {
		lost, _ := e.alertsReceived(&consumertest.Result{Alerts: flatten(want.Notifications)})
		return lost == 0
	})
	e.sub.mu.Lock()
	var offlineMsgs, offlineAlerts int
	for _, n := range e.sub.notes {
		if n[0]["rule"] == "offline" && n[0]["state"] == "FIRING" {
			offlineMsgs++
			offlineAlerts += len(n)
		}
		for _, a := range n {
			if a["device_id"] == "keg-0003" && a["rule"] == "warm" {
				t.Errorf("a silenced alert reached the subscriber: %v", a)
			}
		}
	}
	notes := len(e.sub.notes)
	e.sub.mu.Unlock()
	if offlineMsgs != 1 || offlineAlerts != 100 {
		t.Errorf("offline: %d messages listing %d alerts, want 1 listing 100", offlineMsgs, offlineAlerts)
	}
	if suppressed["keg-0003"] == 0 {
		t.Errorf("no SUPPRESSED row for the silenced keg: %v", suppressed)
	}
	t.Logf("RELIABILITY noise-control: %s; %d alert rows, %d notifications at the subscriber; 100 offline kegs in 1 message; SUPPRESSED rows by device %v; 2 recorded reloads (a silence added, one expired), objects byte-identical to the oracle",
		rep, len(want.Alerts), notes, suppressed)
}

func maxKey(m map[int64]int) (k int64) {
	for x := range m {
		k = max(k, x)
	}
	return k
}

// flatten lists the alerts of notifications, grouped ones included.
func flatten(notes []rules.Alert) []rules.Alert {
	var out []rules.Alert
	for _, n := range notes {
		out = append(out, n)
		out = append(out, n.Group...)
	}
	return out
}
