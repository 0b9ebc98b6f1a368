package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tapline/tapline/deploy/local/faultproxy"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/windows/rules"
)

// Rules of TestRulesReloadAndRestart: consumertest.Rules (leak, warm),
// then warm's threshold changed and a rule added (hot reload), then that
// rule removed and warm's clear level changed (a restart).
const (
	reloadedRules = `rules:
  - {name: leak, kind: threshold, metric: flow_lpm, window: 1m, aggregate: min, above: 0.2, for: 2, severity: critical}
  - {name: warm, kind: threshold, metric: temp_c, window: 5m/1m, aggregate: mean, above: 7, clear: 6}
  - {name: flowing, kind: threshold, metric: flow_lpm, window: 1m, aggregate: mean, above: 0.1}
`
	restartRules = `rules:
  - {name: leak, kind: threshold, metric: flow_lpm, window: 1m, aggregate: min, above: 0.2, for: 2, severity: critical}
  - {name: warm, kind: threshold, metric: temp_c, window: 5m/1m, aggregate: mean, above: 7, clear: 5.5}
`
)

// TestRulesReloadAndRestart: `tapline run` reads its rules from an S3
// object; mid-stream the object changes (a threshold changed, a rule
// added) and the process gets SIGHUP; it is SIGKILLed later, and its
// successor starts with yet other rules (that rule removed, a clear
// level changed). Every shard reloads at a recorded point; the objects
// in S3 equal, byte for byte, an oracle's that reloads at the recorded
// records; the unchanged rule's alerts are those of a run without any
// change (each leak fires once under its original incident and is never
// resolved by a reload); changed and removed rules' FIRING alerts
// resolve with rule_changed and rule_removed; no whole state is reset.
func TestRulesReloadAndRestart(t *testing.T) {
	e := newFaultEnv(t, 2)
	ctx := context.Background()
	lake, err := e.st.S3Store(ctx, "lake")
	if err != nil {
		t.Fatal(err)
	}
	putRules := func(doc string) {
		t.Helper()
		if _, err := lake.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("lake"), Key: aws.String("config/rules.yml"), Body: strings.NewReader(doc)}); err != nil {
			t.Fatal(err)
		}
	}
	putRules(consumertest.Rules)
	e.env = append(e.env, "TAPLINE_RULES_FILE=s3://lake/config/rules.yml", "TAPLINE_RULES_RELOAD=0")

	e.put(consumertest.Telemetry(100, 0, 60))
	var armed atomic.Bool
	var target atomic.Pointer[proc]
	var kills, windowsPuts atomic.Int64
	e.s3.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
		// The second windows file after arming: a batch commits on the
		// new data first, and the kill lands inside the next commit. (A
		// rule on r.N, which counts every PUT, never fired when each
		// commit's PUTs were a multiple of its modulus.)
		if armed.Load() && r.Method == "PUT" && strings.Contains(r.URL.Path, "/windows/") && windowsPuts.Add(1) == 2 && kills.Load() == 0 {
			if p := target.Load(); p != nil {
				return faultproxy.Fault{After: func() {
					if kills.Add(1) == 1 {
						p.cmd.Process.Signal(syscall.SIGKILL)
					}
				}}
			}
		}
		return faultproxy.Fault{}
	})
	w0 := e.start("w0")
	target.Store(w0)
	waitFor(t, "both shards past the first rounds", 60*time.Second, func() bool {
		return strings.Count(w0.logs(), `"batch committed"`) >= 2
	})

	// An invalid document is refused and changes nothing.
	putRules("rules:\n  - {name: warm, kind: threshold, metric: temp_c, window: 2m, above: 7}\n")
	w0.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the invalid rules refused", 10*time.Second, func() bool {
		return strings.Contains(w0.logs(), `rules reload refused`)
	})
	if !strings.Contains(w0.logs(), `rules.yml:2: rule \"warm\": field \"window\"`) {
		t.Fatalf("the refusal does not name the file, line and field:\n%s", tail(w0.logs(), 2000))
	}

	putRules(reloadedRules)
	w0.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "both shards reloaded", 30*time.Second, func() bool {
		return strings.Count(w0.logs(), `"msg":"rules reloaded"`) == 2
	})
	_, metrics := w0.get("/metrics")
	if strings.Contains(metrics, "tapline_state_resets_total{") {
		t.Errorf("w0 reset a whole shard state")
	}
	for _, want := range []string{"tapline_rules_reloads_total 1", "tapline_rules_reload_refused_total 1"} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(metrics, `tapline_rule_state_resets_total{reason="rule_changed"}`) {
		t.Errorf("/metrics counts no rule state reset for the changed rule")
	}

	armed.Store(true)
	e.put(consumertest.Telemetry(100, 60, 110))
	select {
	case <-w0.done:
	case <-time.After(90 * time.Second):
		t.Fatal("w0 was not killed")
	}
	restart := filepath.Join(t.TempDir(), "restart.yml")
	if err := os.WriteFile(restart, []byte(restartRules), 0o644); err != nil {
		t.Fatal(err)
	}
	e.env = append(e.env, "TAPLINE_RULES_FILE="+restart)
	w1 := e.start("w1")
	waitFor(t, "both shards reloaded the restart's rules", 60*time.Second, func() bool {
		return strings.Count(w1.logs(), `"msg":"rules reloaded"`) == 2
	})
	e.put(consumertest.Telemetry(100, 110, 150))
	// The leaking kegs stop leaking: the unchanged rule's alerts, fired
	// before both changes, resolve after them.
	var stop []stack.Record
	for d := range 100 {
		if consumertest.Leaks(d) {
			for tick := 150; tick < 160; tick++ {
				ts := consumertest.Start.Add(time.Duration(tick) * 10 * time.Second)
				stop = append(stop, stack.Record{Key: consumertest.DeviceID(d), Data: fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"flow_lpm":0,"temp_c":4}}`, consumertest.DeviceID(d), ts.UnixMilli())})
			}
		}
	}
	e.put(stop)
	e.put(consumertest.Heartbeat(100))

	reloads, err := journal.Reloads(ctx, lake, "tapline", "faults")
	if err != nil {
		t.Fatal(err)
	}
	if len(reloads) != 4 {
		t.Fatalf("%d reloads recorded, want one per shard and change (4): %v", len(reloads), reloads)
	}
	want := e.oracle() // with those reloads, and any cut recorded
	e.waitAcked(want, 120*time.Second)
	rep := e.verify(want)

	// Byte for byte, every object the oracle wrote.
	for k, b := range want.Objects.Data("tapline") {
		got, err := lake.Get(ctx, k)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s differs from the oracle's (%v)", k, err)
		}
	}
	reasons := map[string]int{}
	for _, a := range want.Alerts {
		reasons[a.Rule+" "+a.Reason]++
	}
	if reasons["warm "+rules.ReasonRuleChanged] == 0 || reasons["flowing "+rules.ReasonRuleRemoved] == 0 || reasons["flowing "] == 0 {
		t.Errorf("alerts by rule and reason %v: want warm resolved by rule_changed, flowing firing then resolved by rule_removed", reasons)
	}
	// The unchanged rule's alerts are a run without changes', and so are
	// every record and window row (rules do not touch them; only the
	// batch boundaries differ, at the reloads).
	plain := e.oracleWith(journal.Recorded{})
	if r := e.compare(plain); r.Lost != 0 || r.Duplicates != 0 || r.WindowMismatches != 0 {
		t.Errorf("against a run without any change or restart: %s", r)
	}
	leaks := func(r *consumertest.Result) (ids []string) {
		for _, a := range r.Alerts {
			if a.Rule == "leak" {
				ids = append(ids, a.ID+" "+string(a.State)+" "+a.Reason)
			}
		}
		return ids
	}
	if a, b := leaks(want), leaks(plain); strings.Join(a, ",") != strings.Join(b, ",") || len(a) == 0 {
		t.Errorf("leak alerts under reloads:\n%v\nwithout:\n%v", a, b)
	}
	// Each leak incident fired once and resolved once, by its condition.
	byIncident := map[string]string{}
	for _, a := range want.Alerts {
		if a.Rule == "leak" {
			byIncident[a.Incident] += string(a.State) + a.Reason + " "
		}
	}
	for inc, states := range byIncident {
		if states != "FIRING RESOLVED " {
			t.Errorf("leak incident %s: %s, want FIRING then RESOLVED", inc, states)
		}
	}
	if len(byIncident) != 2 {
		t.Errorf("%d leak incidents, want one per leaking keg (2)", len(byIncident))
	}
	_, metrics = w1.get("/metrics")
	if !strings.Contains(metrics, "tapline_records_total") || strings.Contains(metrics, "tapline_state_resets_total{") {
		t.Errorf("w1 reset a whole shard state")
	}
	lost, dup := e.alertsReceived(want)
	t.Logf("RELIABILITY rules-reload: 1 invalid document refused; %d reloads recorded (SIGHUP, then a restart with other rules after a SIGKILL); %s; objects byte-identical to the oracle reloading at the recorded records; alerts by rule and reason %v; at the subscriber lost %d, duplicated %d",
		len(reloads), rep, reasons, lost, dup)
}
