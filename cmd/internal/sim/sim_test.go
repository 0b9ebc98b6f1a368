package sim

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapline/tapline/cmd/internal/fleet"
	"github.com/tapline/tapline/deploy/local/mqttbroker"
	"github.com/tapline/tapline/sinks/command"
)

// A shadow delta (what IoT Core sends after UpdateThingShadow) reaches the
// keg, which applies it once, reports its new state to its shadow, and
// ignores a command it does not understand.
func TestShadowDeltaIsObeyedAndReported(t *testing.T) {
	b, err := mqttbroker.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	dev, err := command.DialMQTT(b.URL, "devicesim")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(100)
	cloud, err := command.DialMQTT(b.URL, "cloud")
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Disconnect(100)
	reported := make(chan map[string]any, 4)
	cloud.Subscribe("$aws/things/keg-0002/shadow/update", 1, func(_ mqtt.Client, m mqtt.Message) {
		var doc map[string]any
		json.Unmarshal(m.Payload(), &doc)
		reported <- doc
	}).Wait()

	var mu sync.Mutex
	var got []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	listening := make(chan struct{})
	go func() {
		_, err := Run(ctx, Options{
			Fleet:    fleet.Options{Devices: 3, Start: time.Now().Add(-time.Hour), Seed: 1},
			Duration: time.Hour, Speed: 60, MQTT: dev, OnStart: func() { close(listening) },
			OnCommand: func(c command.Command, changed bool, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					got = append(got, "ignored "+c.ID)
				} else if changed {
					got = append(got, "applied "+c.ID)
				} else {
					got = append(got, "again "+c.ID)
				}
			},
		})
		done <- err
	}()
	<-listening
	// The delta, then the same command again on the command topic (a
	// retried delivery by the other path), then one the keg cannot do.
	again, _ := json.Marshal(command.Command{ID: "00000000000000a1", DeviceID: "keg-0002", Action: "close_valve", Desired: map[string]string{"valve": "closed"}})
	for _, m := range []struct{ topic, payload string }{
		{"$aws/things/keg-0002/shadow/update/delta", `{"state":{"valve":"closed"},"clientToken":"00000000000000a1"}`},
		{command.Topic("keg-0002"), string(again)},
		{"$aws/things/keg-0002/shadow/update/delta", `{"state":{"self_destruct":"now"},"clientToken":"00000000000000a2"}`},
	} {
		cloud.Publish(m.topic, 1, false, m.payload).Wait()
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case doc := <-reported:
		if doc["state"].(map[string]any)["reported"].(map[string]any)["valve"] != "closed" {
			t.Fatalf("reported %v", doc)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the keg reported nothing")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	want := []string{"applied 00000000000000a1", "again 00000000000000a1", "ignored 00000000000000a2"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("commands %v, want %v", got, want)
	}
}
