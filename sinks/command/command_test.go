package command

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapline/tapline/deploy/local/mqttbroker"
	"github.com/tapline/tapline/schemas"
)

func policy(t *testing.T) *Policy {
	t.Helper()
	p, err := LoadPolicy("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadPolicyNamesEveryProblem(t *testing.T) {
	_, err := LoadPolicy("testdata/bad.yml")
	if err == nil {
		t.Fatal("bad.yml loaded")
	}
	for _, want := range []string{`action "Open-Valve"`, `action "nothing" sets no state`, `action "inject": invalid state`,
		"keg-leak FIRING is listed twice", `state "OK"`, `action "self_destruct" is not in actions`, "on[4]: rule is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %q:\n%v", want, err)
		}
	}
	if _, err := ParsePolicy("x.yml", []byte("actions: {a: {valve: closed}}\nunknown: 1\n")); err == nil {
		t.Error("an unknown key was accepted")
	}
}

func alert(id, rule string, state schemas.AlertState, device string) *schemas.AlertMessage {
	return &schemas.AlertMessage{ID: id, Rule: rule, State: state, Device: device}
}

func TestForAlert(t *testing.T) {
	p := policy(t)
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	c, ok, err := p.ForAlert(alert("a1", "keg-leak", schemas.AlertFiring, "keg-0042"), now)
	if err != nil || !ok || c.Action != "close_valve" || c.Desired["valve"] != "closed" || c.DeviceID != "keg-0042" {
		t.Fatalf("leak FIRING -> %+v, %v, %v", c, ok, err)
	}
	again, _, _ := p.ForAlert(alert("a1", "keg-leak", schemas.AlertFiring, "keg-0042"), now.Add(time.Minute))
	if again.ID != c.ID {
		t.Fatal("the same alert gave two command ids")
	}
	other, _, _ := p.ForAlert(alert("a2", "keg-leak", schemas.AlertFiring, "keg-0042"), now)
	if other.ID == c.ID {
		t.Fatal("two alerts gave one command id")
	}
	if _, ok, err := p.ForAlert(alert("a3", "keg-leak", schemas.AlertResolved, "keg-0042"), now); ok || err != nil {
		t.Fatal("no command is listed for a resolved leak")
	}
	for _, dev := range []string{"keg/0042", "keg-+", "#", "", strings.Repeat("k", 129)} {
		if _, _, err := p.ForAlert(alert("a4", "keg-leak", schemas.AlertFiring, dev), now); !errors.Is(err, ErrRefused) {
			t.Errorf("device %q: %v, want refused", dev, err)
		}
	}
}

func TestForRequest(t *testing.T) {
	p := policy(t)
	now := time.Now()
	c, err := p.ForRequest(&Request{DeviceID: "keg-0042", Action: "open_valve", Operator: "alice", RequestID: "r1"}, now)
	if err != nil || c.Desired["valve"] != "open" {
		t.Fatalf("open_valve: %+v %v", c, err)
	}
	if _, err := p.ForRequest(&Request{DeviceID: "keg-0042", Action: "format_disk", Operator: "alice", RequestID: "r2"}, now); !errors.Is(err, ErrRefused) {
		t.Fatalf("an action outside the allow-list: %v", err)
	}
	if _, err := p.ForRequest(&Request{DeviceID: "../keg", Action: "open_valve", Operator: "alice", RequestID: "r3"}, now); err == nil {
		t.Fatal("an invalid device id was accepted")
	}
}

// recorder is a Deliverer that keeps what it was given and can fail.
type recorder struct {
	mu   sync.Mutex
	sent []*Command
	fail error
}

func (r *recorder) Deliver(_ context.Context, c *Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.sent = append(r.sent, c)
	return nil
}

// alertsTopic is the topic the test handlers accept alerts from, and
// macKey the key that signs their alerts.
const alertsTopic = "arn:aws:sns:us-east-1:123456789012:tapline-alerts"

var macKey = []byte(strings.Repeat("k", schemas.MinMACKey))

// signed signs an alert message with key, as the service does.
func signed(t *testing.T, msg string, key []byte) string {
	t.Helper()
	var m schemas.AlertMessage
	if err := json.Unmarshal([]byte(msg), &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(key); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func snsEvent(t *testing.T, messages ...string) json.RawMessage {
	var ev events.SNSEvent
	for i, m := range messages {
		ev.Records = append(ev.Records, events.SNSEventRecord{EventSource: "aws:sns", SNS: events.SNSEntity{MessageID: string(rune('a' + i)), TopicArn: alertsTopic, Message: m}})
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandlerReportsEachRecord(t *testing.T) {
	rec := &recorder{}
	h := &Handler{Policy: policy(t), Deliver: rec, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TopicARN: alertsTopic, MACKey: macKey}
	leak := signed(t, `{"alert_id":"a1","rule":"keg-leak","state":"FIRING","device_id":"keg-0042"}`, macKey)
	// SNS hands Lambda the "lambda" entry; a forwarder may pass the whole
	// MessageStructure=json document.
	doc, _ := json.Marshal(map[string]string{"default": "x", "lambda": signed(t, `{"alert_id":"a2","rule":"keg-warm","state":"RESOLVED","device_id":"keg-0007"}`, macKey)})
	resp, err := h.Handle(context.Background(), snsEvent(t, leak, string(doc),
		signed(t, `{"alert_id":"a3","rule":"keg-offline","state":"FIRING","device_id":"keg-0001"}`, macKey),
		signed(t, `{"alert_id":"a4","rule":"keg-leak","state":"FIRING","device_id":"keg/../0001"}`, macKey),
		`not json`,
		// a reminder of a firing alert: the command went with the first
		signed(t, `{"alert_id":"a5","rule":"keg-leak","state":"FIRING","device_id":"keg-0042","repeat":2}`, macKey)))
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, r := range resp.Results {
		statuses = append(statuses, r.Status)
	}
	if got := strings.Join(statuses, ","); got != "sent,sent,no_action,refused,refused,no_action" {
		t.Fatalf("statuses %s: %+v", got, resp.Results)
	}
	if len(rec.sent) != 2 || rec.sent[1].Desired["cooler"] != "normal" {
		t.Fatalf("sent %+v", rec.sent)
	}
	// A failed delivery is reported and returned, so Lambda retries.
	rec.fail = errors.New("broker down")
	resp, err = h.Handle(context.Background(), snsEvent(t, leak))
	if err == nil || resp.Results[0].Status != "failed" {
		t.Fatalf("failed delivery: %+v, %v", resp, err)
	}
	// An operator's request through the function URL, unknown fields
	// refused.
	rec.fail = nil
	resp, err = h.Handle(context.Background(), urlRequest(t, `{"device_id":"keg-0042","action":"open_valve","request_id":"r1"}`, aliceARN))
	if err != nil || resp.Results[0].Status != "sent" {
		t.Fatalf("request: %+v, %v", resp, err)
	}
	resp, _ = h.Handle(context.Background(), urlRequest(t, `{"device_id":"keg-0042","action":"open_valve","request_id":"r1","sudo":true}`, aliceARN))
	if resp.Results[0].Status != "refused" {
		t.Fatalf("request with an unknown field: %+v", resp)
	}
	big := append([]byte(`{"device_id":"keg-0042","action":"open_valve","operator":"`), make([]byte, MaxInvocation)...)
	resp, _ = h.Handle(context.Background(), append(big, `"}`...))
	if resp.Results[0].Status != "refused" {
		t.Fatalf("an oversized invocation: %+v", resp)
	}
}

const aliceARN = "arn:aws:sts::123456789012:assumed-role/tapline-operators/alice"

// urlRequest is a function URL invocation with body, authenticated as
// caller ("" for none).
func urlRequest(t *testing.T, body, caller string) json.RawMessage {
	t.Helper()
	ev := events.LambdaFunctionURLRequest{Version: "2.0", RawPath: "/", Body: body}
	if caller != "" {
		ev.RequestContext.Authorizer = &events.LambdaFunctionURLRequestContextAuthorizerDescription{
			IAM: &events.LambdaFunctionURLRequestContextAuthorizerIAMDescription{UserARN: caller}}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOperatorIsTheCaller: the operator of a request is the IAM principal
// that called the function URL, whatever the body says; a request with no
// IAM identity, and a direct invocation (which names no caller), are
// refused. Before, "operator" was whatever the payload said.
func TestOperatorIsTheCaller(t *testing.T) {
	rec := &recorder{}
	h := &Handler{Policy: policy(t), Deliver: rec, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TopicARN: alertsTopic, MACKey: macKey}
	resp, err := h.Handle(context.Background(), urlRequest(t, `{"device_id":"keg-0042","action":"open_valve","request_id":"r1"}`, aliceARN))
	if err != nil || resp.Results[0].Status != "sent" || len(rec.sent) != 1 || rec.sent[0].Reason != "operator "+aliceARN {
		t.Fatalf("request: %+v, %v, sent %+v", resp, err, rec.sent)
	}
	for name, raw := range map[string]json.RawMessage{
		"operator in the body": urlRequest(t, `{"device_id":"keg-0042","action":"open_valve","operator":"root","request_id":"r2"}`, aliceARN),
		"no IAM identity":      urlRequest(t, `{"device_id":"keg-0042","action":"open_valve","request_id":"r3"}`, ""),
		"direct invocation":    json.RawMessage(`{"device_id":"keg-0042","action":"open_valve","operator":"alice","request_id":"r4"}`),
	} {
		if resp, _ := h.Handle(context.Background(), raw); resp.Results[0].Status != "refused" {
			t.Errorf("%s: %+v", name, resp)
		}
	}
	if len(rec.sent) != 1 {
		t.Fatalf("sent %d commands", len(rec.sent))
	}
}

// TestForgedAlertsRefused: an SNS-shaped event from another topic, or not
// from SNS at all (a direct invocation), and an alert for a device that
// is not one of the deployment's things, reach no device. Before, Handle
// read neither EventSource nor TopicArn, and any valid thing name passed.
func TestForgedAlertsRefused(t *testing.T) {
	rec := &recorder{}
	p := policy(t)
	p.ThingPrefix = "keg-"
	h := &Handler{Policy: p, Deliver: rec, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TopicARN: alertsTopic, MACKey: macKey}
	raw := `{"alert_id":"a1","rule":"keg-leak","state":"FIRING","device_id":"keg-0042"}`
	leak := signed(t, raw, macKey)
	for name, mutate := range map[string]func(*events.SNSEventRecord){
		"unsigned":                func(r *events.SNSEventRecord) { r.SNS.Message = raw },
		"signed with another key": func(r *events.SNSEventRecord) { r.SNS.Message = signed(t, raw, []byte(strings.Repeat("x", 32))) },
		"another topic":           func(r *events.SNSEventRecord) { r.SNS.TopicArn = "arn:aws:sns:us-east-1:999999999999:evil" },
		"no topic":                func(r *events.SNSEventRecord) { r.SNS.TopicArn = "" },
		"not SNS":                 func(r *events.SNSEventRecord) { r.EventSource = "aws:sqs" },
		"no source":               func(r *events.SNSEventRecord) { r.EventSource = "" },
		"another device": func(r *events.SNSEventRecord) {
			r.SNS.Message = signed(t, strings.Replace(raw, "keg-0042", "pump-7", 1), macKey)
		},
		"edited": func(r *events.SNSEventRecord) { r.SNS.Message = strings.Replace(leak, "keg-0042", "keg-0043", 1) },
	} {
		var ev events.SNSEvent
		json.Unmarshal(snsEvent(t, leak), &ev)
		mutate(&ev.Records[0])
		raw, _ := json.Marshal(ev)
		resp, err := h.Handle(context.Background(), raw)
		if err != nil || len(resp.Results) != 1 || resp.Results[0].Status != "refused" {
			t.Errorf("%s: %+v, %v", name, resp, err)
		}
	}
	resp, _ := h.Handle(context.Background(), urlRequest(t, `{"device_id":"pump-7","action":"open_valve","request_id":"r1"}`, aliceARN))
	if resp.Results[0].Status != "refused" {
		t.Errorf("operator request for another deployment's device: %+v", resp)
	}
	// Without a configured topic nothing from SNS is trusted.
	h.TopicARN = ""
	if resp, _ := h.Handle(context.Background(), snsEvent(t, leak)); resp.Results[0].Status != "refused" {
		t.Errorf("no configured topic: %+v", resp)
	}
	if len(rec.sent) != 0 {
		t.Fatalf("forged input reached devices: %+v", rec.sent)
	}
	h.TopicARN = alertsTopic
	if resp, _ := h.Handle(context.Background(), snsEvent(t, leak)); resp.Results[0].Status != "sent" {
		t.Fatalf("the real alert: %+v", resp)
	}
}

// The MQTT deliverer through a real broker: a device subscribed to its
// command topic receives the command; the same alert twice gives the same
// command id twice.
func TestMQTTDelivery(t *testing.T) {
	b, err := mqttbroker.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	dev, err := DialMQTT(b.URL, "keg-0042")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(100)
	got := make(chan Command, 4)
	if tok := dev.Subscribe(Topic("keg-0042"), 1, func(_ mqtt.Client, m mqtt.Message) {
		var c Command
		json.Unmarshal(m.Payload(), &c)
		got <- c
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub, err := DialMQTT(b.URL, "commander")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(100)
	h := &Handler{Policy: policy(t), Deliver: MQTT{Client: pub}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TopicARN: alertsTopic, MACKey: macKey}
	ev := snsEvent(t, signed(t, `{"alert_id":"a1","rule":"keg-leak","state":"FIRING","device_id":"keg-0042"}`, macKey))
	for range 2 {
		if _, err := h.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for range 2 {
		select {
		case c := <-got:
			if c.Desired["valve"] != "closed" {
				t.Fatalf("received %+v", c)
			}
			ids = append(ids, c.ID)
		case <-time.After(5 * time.Second):
			t.Fatal("no command received")
		}
	}
	if ids[0] != ids[1] {
		t.Fatalf("one alert, two command ids: %v", ids)
	}
}

// The shadow deliverer's request, as the IoT data plane receives it: the
// thing's shadow, its desired state, the command id as clientToken. (No
// local IoT data plane exists; this checks the request on the wire.)
func TestShadowRequest(t *testing.T) {
	var path string
	var body map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.Path
		json.NewDecoder(r.Body).Decode(&body)
		w.Write([]byte(`{"state":{}}`))
	}))
	defer srv.Close()
	client := iotdataplane.New(iotdataplane.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
	c := &Command{ID: ID("alert:a1", "keg-0042", "close_valve"), DeviceID: "keg-0042", Action: "close_valve", Desired: map[string]string{"valve": "closed"}}
	if err := (Shadow{Client: client}).Deliver(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if path != "/things/keg-0042/shadow" || body["clientToken"] != c.ID || body["state"].(map[string]any)["desired"].(map[string]any)["valve"] != "closed" {
		t.Fatalf("request %s %v", path, body)
	}
	bad := *c
	bad.DeviceID = "keg/../x"
	if err := (Shadow{Client: client}).Deliver(context.Background(), &bad); err == nil {
		t.Fatal("an invalid device id reached the shadow")
	}
}

func TestDefaultPolicy(t *testing.T) {
	p := Default()
	if c, ok, err := p.ForAlert(alert("a1", "keg-leak", schemas.AlertFiring, "keg-0001"), time.Now()); !ok || err != nil || c.Desired["valve"] != "closed" {
		t.Fatalf("the default policy does not close the valve on a leak: %+v %v %v", c, ok, err)
	}
}

// FuzzCommandTopic: whatever device id, action and state a command
// carries, if it validates, its MQTT topic is exactly tapline/commands/
// and one level without wildcards, and its shadow document is JSON with
// only the desired state.
func FuzzCommandTopic(f *testing.F) {
	for _, s := range []string{"keg-0042", "../x", "a/+/#", "$aws", "kеg", "x\x00y", "", strings.Repeat("k", 129)} {
		f.Add(s, "close_valve", "valve", "closed")
	}
	f.Fuzz(func(t *testing.T, device, action, key, value string) {
		c := &Command{ID: ID("alert:x", device, action), DeviceID: device, Action: action, Desired: map[string]string{key: value}}
		if c.Validate() != nil {
			return
		}
		topic := Topic(c.DeviceID)
		rest, ok := strings.CutPrefix(topic, "tapline/commands/")
		if !ok || rest == "" || strings.ContainsAny(rest, "/+#\x00") || strings.HasPrefix(rest, "$") {
			t.Fatalf("device %q gives topic %q", device, topic)
		}
		doc, err := ShadowUpdate(c)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil || len(m) != 2 || m["clientToken"] != c.ID {
			t.Fatalf("shadow document %s", doc)
		}
	})
}

// TestGroupedAndSuppressed: a grouped notification commands for each of
// its alerts; a SUPPRESSED alert (never published, but a topic others can
// write might carry one) commands nothing, alone or in a group; a group
// member cannot be changed without breaking the message's MAC.
func TestGroupedAndSuppressed(t *testing.T) {
	rec := &recorder{}
	h := &Handler{Policy: policy(t), Deliver: rec, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), TopicARN: alertsTopic, MACKey: macKey}
	group := signed(t, `{"alert_id":"a1","rule":"keg-leak","state":"FIRING","device_id":"keg-0001","group":[
		{"alert_id":"a2","rule":"keg-leak","state":"FIRING","device_id":"keg-0002"},
		{"alert_id":"a3","rule":"keg-leak","state":"SUPPRESSED","device_id":"keg-0003"}]}`, macKey)
	resp, err := h.Handle(context.Background(), snsEvent(t, group,
		signed(t, `{"alert_id":"a4","rule":"keg-leak","state":"SUPPRESSED","device_id":"keg-0004"}`, macKey),
		strings.Replace(group, "keg-0002", "keg-0009", 1)))
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, r := range resp.Results {
		statuses = append(statuses, r.Record+":"+r.Status)
	}
	if got := strings.Join(statuses, ","); got != "a:sent,a#1:sent,a#2:refused,b:refused,c:refused" {
		t.Fatalf("statuses %s", got)
	}
	if len(rec.sent) != 2 || rec.sent[0].DeviceID != "keg-0001" || rec.sent[1].DeviceID != "keg-0002" {
		t.Fatalf("sent %+v", rec.sent)
	}
}
