package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapline/tapline/deploy/local/iotdata"
	"github.com/tapline/tapline/deploy/local/mqttbroker"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
	"github.com/tapline/tapline/sinks/live"
)

// TestServiceLive runs `tapline run` with live summaries going to IoT
// Core's data plane (the local stand-in, handing them to a broker a
// dashboard subscribes to). While the data plane is down the service
// writes S3 as always and counts the failed sends; once it is back the
// subscriber receives batches of window summaries and the alerts.
func TestServiceLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local stack and the service")
	}
	dir := t.TempDir()
	bin := binary(t, ".")
	st, err := stack.Start(stack.Options{Dir: dir})
	server.Require(t, err)
	defer st.Stop()
	broker, err := mqttbroker.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Stop()
	plane, err := iotdata.Start(func(topic string, payload []byte) error { return broker.Server().Publish(topic, payload, false, 0) })
	if err != nil {
		t.Fatal(err)
	}
	defer plane.Stop()
	plane.SetDown(true)

	const stream, app, bucket, devices = "telemetry", "livetest", "lake", 20
	var mu sync.Mutex
	got := map[string]int{} // topic kind -> summaries
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL).SetClientID("dashboard"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(0)
	tok := sub.Subscribe(live.Topic(app, "#"), 0, func(_ paho.Client, m paho.Message) {
		kind := strings.TrimPrefix(m.Topic(), live.Topic(app, ""))
		n := 1
		if kind == "windows" {
			var ws []live.Window
			if err := json.Unmarshal(m.Payload(), &ws); err != nil {
				t.Errorf("windows: %v: %s", err, m.Payload())
			}
			n = len(ws)
		}
		mu.Lock()
		got[kind] += n
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	ctx := context.Background()
	k := st.KinesisClient()
	if err := stack.CreateStream(ctx, k, stream, 1); err != nil {
		t.Fatal(err)
	}
	store, err := st.S3Store(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(dir, "rules.yml")
	os.WriteFile(rulesFile, []byte(consumertest.Rules), 0o644)
	env := append(st.Env(), "TAPLINE_APP="+app, "TAPLINE_STREAM="+stream, "TAPLINE_S3_BUCKET="+bucket, "TAPLINE_S3_PREFIX=tapline",
		"TAPLINE_RULES_FILE="+rulesFile, "TAPLINE_WINDOWS=1m,5m/1m", "TAPLINE_ALLOWED_LATENESS=30s", "TAPLINE_BATCH_FLUSH_EVERY=2m",
		"TAPLINE_KCL_SHARD_SYNC=300ms", "TAPLINE_KCL_IDLE_BETWEEN_READS=100ms", "TAPLINE_LIVE_ENDPOINT="+plane.URL)
	if err := stack.Put(ctx, k, stream, consumertest.Telemetry(devices, 0, 100)); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, bin, "live", env)
	waitFor(t, "windows written to S3 while the data plane is down", 60*time.Second, func() bool {
		keys, _ := store.List(ctx, "tapline/windows/")
		return len(keys) > 0
	})
	waitFor(t, "failed sends counted", 30*time.Second, func() bool { return p.metric("tapline_live_send_errors_total") > 0 })
	mu.Lock()
	if len(got) != 0 {
		t.Fatalf("received %v while the data plane was down", got)
	}
	mu.Unlock()

	plane.SetDown(false)
	if err := stack.Put(ctx, k, stream, consumertest.Telemetry(devices, 100, 200)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "window summaries at the dashboard", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got["windows"] > 0
	})
	mu.Lock()
	t.Logf("dashboard received %v; service counted %v windows, %v sent, %v send errors", got,
		p.metric("tapline_live_windows_total"), p.metric("tapline_live_sent_total"), p.metric("tapline_live_send_errors_total"))
	mu.Unlock()
}
