package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapline/tapline/deploy/local/lambdarie"
	"github.com/tapline/tapline/deploy/local/mqttbroker"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/command"
)

// The commander binary under the Lambda Runtime Interface Emulator: an SNS
// event with a leak alert becomes a close_valve command on the device's
// MQTT topic; an operator's unknown action is refused.
func TestCommanderUnderRIE(t *testing.T) {
	broker, err := mqttbroker.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Stop()
	bin := filepath.Join(t.TempDir(), "bootstrap")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	const topic = "arn:aws:sns:us-east-1:123456789012:tapline-alerts"
	key := strings.Repeat("k", 32)
	fn, err := lambdarie.Start(bin, []string{"TAPLINE_COMMAND_BACKEND=mqtt", "TAPLINE_MQTT_URL=" + broker.URL,
		"TAPLINE_ALERTS_TOPIC_ARN=" + topic, "TAPLINE_THING_PREFIX=keg-", "TAPLINE_ALERT_MAC_KEY=" + key})
	server.Require(t, err)
	defer fn.Stop()

	dev, err := command.DialMQTT(broker.URL, "keg-0042")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(100)
	got := make(chan command.Command, 1)
	dev.Subscribe(command.Topic("keg-0042"), 1, func(_ mqtt.Client, m mqtt.Message) {
		var c command.Command
		json.Unmarshal(m.Payload(), &c)
		got <- c
	}).Wait()

	ev, _ := json.Marshal(events.SNSEvent{Records: []events.SNSEventRecord{{EventSource: "aws:sns", SNS: events.SNSEntity{MessageID: "m1", TopicArn: topic,
		Message: signedAlert(t, `{"alert_id":"0123456789abcdef","rule":"keg-leak","state":"FIRING","device_id":"keg-0042"}`, key)}}}})
	out, err := fn.Invoke(ev)
	if err != nil || !strings.Contains(string(out), `"status":"sent"`) {
		t.Fatalf("invoke: %s, %v", out, err)
	}
	select {
	case c := <-got:
		if c.Action != "close_valve" || c.Desired["valve"] != "closed" {
			t.Fatalf("device received %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device received no command")
	}
	out, err = fn.Invoke([]byte(`{"version":"2.0","rawPath":"/","requestContext":{"authorizer":{"iam":{"userArn":"arn:aws:iam::123456789012:user/mallory"}}},"body":"{\"device_id\":\"keg-0042\",\"action\":\"format_disk\",\"request_id\":\"r1\"}"}`))
	if err != nil || !strings.Contains(string(out), `"status":"refused"`) || !strings.Contains(string(out), "refused by the command policy") {
		t.Fatalf("unknown action: %s, %v", out, err)
	}
	// An allowed action through the function URL reaches the device, in
	// the name of the IAM caller.
	out, err = fn.Invoke([]byte(`{"version":"2.0","rawPath":"/","requestContext":{"authorizer":{"iam":{"userArn":"arn:aws:iam::123456789012:user/alice"}}},"body":"{\"device_id\":\"keg-0042\",\"action\":\"open_valve\",\"request_id\":\"r2\"}"}`))
	if err != nil || !strings.Contains(string(out), `"status":"sent"`) {
		t.Fatalf("operator request: %s, %v", out, err)
	}
	select {
	case c := <-got:
		if c.Action != "open_valve" || c.Reason != "operator arn:aws:iam::123456789012:user/alice" {
			t.Fatalf("device received %+v", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device received no operator command")
	}
}

func signedAlert(t *testing.T, msg, key string) string {
	t.Helper()
	var m schemas.AlertMessage
	if err := json.Unmarshal([]byte(msg), &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Sign([]byte(key)); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	return string(b)
}
