package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/tapline/tapline/cmd/internal/fleet"
	"github.com/tapline/tapline/cmd/internal/sim"
	"github.com/tapline/tapline/deploy/local/goaws"
	"github.com/tapline/tapline/deploy/local/lambdarie"
	"github.com/tapline/tapline/deploy/local/mqttbroker"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/sinks/command"
)

// seen is what the loop test observed, with wall times.
type seen struct {
	mu       sync.Mutex
	alerts   []seenAlert
	commands []seenCommand
	ticks    []seenTick
	invokes  []string
}

type seenAlert struct {
	ID, Rule, State, Device string
	At                      time.Time // event time of the transition
	Received                time.Time
}

type seenCommand struct {
	command.Command
	Changed  bool
	Received time.Time
}

type seenTick struct{ Event, Sent time.Time }

func (s *seen) alert(rule, state, device string) (seenAlert, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.alerts {
		if a.Rule == rule && a.State == state && a.Device == device {
			return a, true
		}
	}
	return seenAlert{}, false
}

// sentAt is the wall time the first tick at or after event time t went out.
func (s *seen) sentAt(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tk := range s.ticks {
		if !tk.Event.Before(t) {
			return tk.Sent
		}
	}
	return time.Time{}
}

// loopMACKey is the alert MAC key the service and the commander share.
const loopMACKey = "closed-loop-test-key-of-32-bytes!"

// TestClosedLoop runs the whole loop on the local stack: simulated kegs
// (package sim) → Kinesis (kinesalite) → `tapline run` → SNS (goaws) →
// an HTTP subscription that invokes the commander Lambda with the SNS
// event, as the Lambda service would, under the Lambda Runtime Interface
// Emulator → MQTT (mochi-mqtt) → the leaking keg closes its valve → the
// leak alert resolves. It reports the alert latency: from the record that
// closed the leak's second window to SNS, and from SNS to the command at
// the keg. The service signs its alerts and the commander verifies them.
func TestClosedLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("closed loop: starts the local stack, tapline and the commander")
	}
	dir := t.TempDir()
	bins := map[string]string{"tapline": binary(t, "."), "commander": binary(t, "../commander")}
	broker, err := mqttbroker.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Stop()
	fn, err := lambdarie.Start(bins["commander"], []string{"TAPLINE_COMMAND_BACKEND=mqtt", "TAPLINE_MQTT_URL=" + broker.URL,
		"TAPLINE_ALERTS_TOPIC_ARN=" + goaws.TopicARN("tapline-alerts"), "TAPLINE_THING_PREFIX=keg-", "TAPLINE_ALERT_MAC_KEY=" + loopMACKey})
	server.Require(t, err)
	defer fn.Stop()

	obs := &seen{}
	// The SNS HTTP subscriber plays the Lambda service: it turns each
	// notification into the SNS event a subscribed function receives.
	forward := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		body, _ := io.ReadAll(r.Body)
		var n struct{ MessageId, TopicArn, Subject, Message, Timestamp string }
		if json.Unmarshal(body, &n) != nil {
			return
		}
		var doc map[string]string
		msg := n.Message
		if json.Unmarshal([]byte(n.Message), &doc) == nil && doc["lambda"] != "" {
			msg = doc["lambda"] // what SNS gives a Lambda subscriber
		}
		var a struct{ AlertID, Rule, State, DeviceID, At string }
		var raw map[string]any
		json.Unmarshal([]byte(msg), &raw)
		a.AlertID, _ = raw["alert_id"].(string)
		a.Rule, _ = raw["rule"].(string)
		a.State, _ = raw["state"].(string)
		a.DeviceID, _ = raw["device_id"].(string)
		a.At, _ = raw["at"].(string)
		at, _ := time.Parse(time.RFC3339, a.At)
		obs.mu.Lock()
		obs.alerts = append(obs.alerts, seenAlert{a.AlertID, a.Rule, a.State, a.DeviceID, at, received})
		obs.mu.Unlock()
		ev, _ := json.Marshal(events.SNSEvent{Records: []events.SNSEventRecord{{EventSource: "aws:sns", EventVersion: "1.0",
			SNS: events.SNSEntity{MessageID: n.MessageId, TopicArn: n.TopicArn, Subject: n.Subject, Message: msg, Timestamp: received}}}})
		out, err := fn.Invoke(ev)
		obs.mu.Lock()
		obs.invokes = append(obs.invokes, string(out)+errString(err))
		obs.mu.Unlock()
	}))
	defer forward.Close()

	st, err := stack.Start(stack.Options{Dir: dir, Topics: map[string][]string{"tapline-alerts": {forward.URL}}})
	server.Require(t, err)
	defer st.Stop()
	ctx := context.Background()
	k := st.KinesisClient()
	if err := stack.CreateStream(ctx, k, "telemetry", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := st.S3Store(ctx, "lake"); err != nil {
		t.Fatal(err)
	}
	env := append(st.Env(), "TAPLINE_STREAM=telemetry", "TAPLINE_S3_BUCKET=lake", "TAPLINE_APP=loop", "TAPLINE_SNS_MAC_KEY="+loopMACKey,
		"TAPLINE_SNS_TOPIC_ARN="+goaws.TopicARN("tapline-alerts"), "TAPLINE_RULES_FILE=../internal/demo/rules.yml",
		"TAPLINE_KCL_SHARD_SYNC=200ms", "TAPLINE_KCL_IDLE_BETWEEN_READS=50ms", "TAPLINE_SHUTDOWN_TIMEOUT=20s")
	tl := startProc(t, bins["tapline"], "tapline", env)
	waitFor(t, "tapline ready", 30*time.Second, func() bool { c, _ := tl.get("/readyz"); return c == 200 })
	waitFor(t, "both shards", 30*time.Second, func() bool { return tl.metric("tapline_leases_taken_total") >= 2 })

	mq, err := command.DialMQTT(broker.URL, "devicesim")
	if err != nil {
		t.Fatal(err)
	}
	defer mq.Disconnect(100)
	const leaky = "keg-0007"
	duration := 40 * time.Minute
	simCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	simDone := make(chan error, 1)
	go func() {
		_, err := sim.Run(simCtx, sim.Options{
			Fleet: fleet.Options{Devices: 20, Start: time.Now().Add(-duration).Truncate(time.Minute), Seed: 7,
				Faults: []fleet.Fault{{Kind: fleet.Leak, Device: 6, From: 5 * time.Minute}}},
			Duration: duration, Speed: 120, Kinesis: k, Stream: "telemetry", MQTT: mq,
			OnTick: func(event, sent time.Time) {
				obs.mu.Lock()
				obs.ticks = append(obs.ticks, seenTick{event, sent})
				obs.mu.Unlock()
			},
			OnCommand: func(c command.Command, changed bool, err error) {
				obs.mu.Lock()
				obs.commands = append(obs.commands, seenCommand{c, changed, time.Now()})
				obs.mu.Unlock()
			},
		})
		simDone <- err
	}()

	var firing, resolved seenAlert
	waitFor(t, "keg-leak FIRING for "+leaky+" at the SNS subscriber", 60*time.Second, func() bool {
		var ok bool
		firing, ok = obs.alert("keg-leak", "FIRING", leaky)
		return ok
	})
	var cmd seenCommand
	waitFor(t, "close_valve at "+leaky, 30*time.Second, func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		for _, c := range obs.commands {
			if c.DeviceID == leaky && c.Action == "close_valve" && c.Changed {
				cmd = c
				return true
			}
		}
		return false
	})
	waitFor(t, "keg-leak RESOLVED for "+leaky, 60*time.Second, func() bool {
		var ok bool
		resolved, ok = obs.alert("keg-leak", "RESOLVED", leaky)
		return ok
	})
	cancel()
	<-simDone
	if !resolved.At.After(firing.At) {
		t.Fatalf("resolved at %v, fired at %v", resolved.At, firing.At)
	}
	// The record that closed the leak's deciding window is the first one
	// past its end plus the allowed lateness (30 s).
	closed := obs.sentAt(firing.At.Add(30 * time.Second))
	toSNS := firing.Received.Sub(closed)
	toKeg := cmd.Received.Sub(firing.Received)
	t.Logf("alert latency: record closing the window -> SNS subscriber %v; SNS -> command at the keg (commander under RIE, MQTT) %v; total %v",
		toSNS.Round(time.Millisecond), toKeg.Round(time.Millisecond), (toSNS + toKeg).Round(time.Millisecond))
	obs.mu.Lock() // the forwarder may still be recording an invocation
	alerts, commands, invokes := len(obs.alerts), len(obs.commands), len(obs.invokes)
	obs.mu.Unlock()
	t.Logf("leak fired at event time %s, valve closed, resolved at %s; %d alerts, %d commands at the kegs, %d invocations",
		firing.At.Format(time.TimeOnly), resolved.At.Format(time.TimeOnly), alerts, commands, invokes)
	if closed.IsZero() || toSNS <= 0 || toKeg <= 0 {
		t.Fatalf("latencies not measured: closed %v, SNS %v, command %v", closed, firing.Received, cmd.Received)
	}
}

func errString(err error) string {
	if err != nil {
		return " error: " + err.Error()
	}
	return ""
}

// BenchmarkAlertLatency measures event-to-alert latency through `tapline
// run` on the local stack: 200 simulated kegs at 120x speed, 40 of them
// starting to leak 30 s of event time apart, so 40 leak alerts fire at
// different window ends. Each sample is the wall time from the record
// that closed the deciding window (the first past its end plus the 30 s
// allowed lateness) to the alert at the SNS HTTP subscriber. It reports
// p50, p99 and the maximum.
//
//	go test -run '^$' -bench AlertLatency -benchtime 1x ./cmd/tapline
func BenchmarkAlertLatency(b *testing.B) {
	dir := b.TempDir()
	bin := binary(b, ".")
	obs := &seen{}
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received := time.Now()
		raw := alertOf(r)
		if raw == nil {
			return
		}
		at, _ := time.Parse(time.RFC3339, fmt.Sprint(raw["at"]))
		obs.mu.Lock()
		obs.alerts = append(obs.alerts, seenAlert{fmt.Sprint(raw["alert_id"]), fmt.Sprint(raw["rule"]), fmt.Sprint(raw["state"]), fmt.Sprint(raw["device_id"]), at, received})
		obs.mu.Unlock()
	}))
	defer sub.Close()
	st, err := stack.Start(stack.Options{Dir: dir, Topics: map[string][]string{"tapline-alerts": {sub.URL}}})
	server.Require(b, err)
	defer st.Stop()
	ctx := context.Background()
	k := st.KinesisClient()
	if err := stack.CreateStream(ctx, k, "telemetry", 4); err != nil {
		b.Fatal(err)
	}
	if _, err := st.S3Store(ctx, "lake"); err != nil {
		b.Fatal(err)
	}
	p := startProc(b, bin, "tapline", append(st.Env(), "TAPLINE_STREAM=telemetry", "TAPLINE_S3_BUCKET=lake", "TAPLINE_APP=latency",
		"TAPLINE_SNS_TOPIC_ARN="+goaws.TopicARN("tapline-alerts"), "TAPLINE_RULES_FILE=../internal/demo/rules.yml",
		"TAPLINE_KCL_SHARD_SYNC=200ms", "TAPLINE_KCL_IDLE_BETWEEN_READS=50ms"))
	waitFor(b, "ready", 30*time.Second, func() bool { return p.metric("tapline_leases_taken_total") >= 4 })
	var faults []fleet.Fault
	for i := range 40 {
		faults = append(faults, fleet.Fault{Kind: fleet.Leak, Device: 5 * i, From: 5*time.Minute + time.Duration(i)*30*time.Second})
	}
	duration := 30 * time.Minute
	b.ResetTimer()
	if _, err := sim.Run(ctx, sim.Options{
		Fleet:    fleet.Options{Devices: 200, Start: time.Now().Add(-duration).Truncate(time.Minute), Seed: 9, Faults: faults},
		Duration: duration, Speed: 120, Kinesis: k, Stream: "telemetry",
		OnTick: func(event, sent time.Time) {
			obs.mu.Lock()
			obs.ticks = append(obs.ticks, seenTick{event, sent})
			obs.mu.Unlock()
		},
	}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the last alerts in flight
	b.StopTimer()
	var lat []time.Duration
	for _, a := range obs.alerts {
		if a.Rule == "keg-leak" && a.State == "FIRING" {
			if closed := obs.sentAt(a.At.Add(30 * time.Second)); !closed.IsZero() {
				lat = append(lat, a.Received.Sub(closed))
			}
		}
	}
	if len(lat) < 30 {
		b.Fatalf("%d leak alerts timed, want about 40", len(lat))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Milliseconds()) }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(len(lat)), "alerts")
}
