package snssink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tapline/tapline/deploy/local/goaws"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/versitygw"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/windows/rules"
)

var (
	firing = &rules.Alert{ID: "a1", Incident: "i1", Rule: "keg-leak", Kind: "threshold", Severity: "critical", Device: "keg-0042",
		Metric: "flow_lpm", Window: "1m", State: rules.Firing, Value: 0.26, Threshold: 0.05,
		Start: 1764266400000, End: 1764266460000, At: 1764266460000, Message: "keg-0042 flow_lpm min 0.26 > 0.05 in 2 of the last 2 1m windows [keg-leak]"}
	resolved = &rules.Alert{ID: "a2", Incident: "i2", Rule: "keg-offline", Kind: "missing", Severity: "warning", Device: "keg-0021",
		State: rules.Resolved, Value: 30, Threshold: 300, Start: 1764266400000, End: 1764266700000, At: 1764266700000, Message: "keg-0021 reporting again [keg-offline]"}
)

// notification is what an HTTP subscriber receives from SNS.
type notification struct {
	Type              string
	Subject           string
	Message           string
	MessageAttributes map[string]struct{ Type, Value string }
}

// TestPublishToGoaws publishes through a real SNS server (goaws) to an
// HTTP subscriber and checks what the subscriber sees.
func TestPublishToGoaws(t *testing.T) {
	var mu sync.Mutex
	var got []notification
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var n notification
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("subscriber got %q: %v", body, err)
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	defer recv.Close()
	srv, err := goaws.Start(t.TempDir(), map[string][]string{"tapline-alerts": {recv.URL + "/alerts"}})
	server.Require(t, err)
	defer srv.Stop()

	var dead []error
	p, err := New(aws.Config{
		Region:       goaws.Region,
		Credentials:  credentials.NewStaticCredentialsProvider("x", "y", ""),
		BaseEndpoint: aws.String(srv.Endpoint),
	}, Options{TopicARN: goaws.TopicARN("tapline-alerts"), DeadLetter: func(_ *rules.Alert, err error) { dead = append(dead, err) }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Run(context.Background()); close(done) }()
	p.Enqueue(firing)
	p.Enqueue(resolved)
	p.Close()
	<-done
	if len(dead) != 0 || p.Sent.Load() != 2 {
		t.Fatalf("sent %d, dead letters %v", p.Sent.Load(), dead)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("subscriber received %d notifications, want 2", len(got))
	}
	bySubject := map[string]notification{}
	for _, n := range got {
		bySubject[n.Subject] = n
	}
	n, ok := bySubject["FIRING critical keg-leak keg-0042 flow_lpm=0.26 > 0.05"]
	if !ok {
		t.Fatalf("subjects: %v", bySubject)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(n.Message), &body); err != nil {
		t.Fatalf("HTTP subscribers should get the alert as JSON, got %q", n.Message)
	}
	// Real SNS hands an HTTP subscriber the "http" entry of a
	// MessageStructure=json message; goaws v0.4.5 forwards the whole
	// document. Take the entry when the whole document arrives.
	if httpMsg, ok := body["http"].(string); ok {
		if body["default"] == nil || !strings.HasPrefix(body["email"].(string), "FIRING critical keg-leak") {
			t.Fatalf("message structure: %v", body)
		}
		body = nil
		if err := json.Unmarshal([]byte(httpMsg), &body); err != nil {
			t.Fatal(err)
		}
	}
	if body["alert_id"] != "a1" || body["device_id"] != "keg-0042" || body["state"] != "FIRING" || body["at"] != "2025-11-27T18:01:00.000Z" {
		t.Fatalf("alert JSON: %v", body)
	}
	for k, v := range map[string]string{"severity": "critical", "rule": "keg-leak", "device_id": "keg-0042", "metric": "flow_lpm", "state": "FIRING"} {
		if n.MessageAttributes[k].Value != v {
			t.Errorf("attribute %s = %+v, want %s", k, n.MessageAttributes[k], v)
		}
	}
	if r, ok := bySubject["RESOLVED warning keg-offline keg-0021"]; !ok || r.MessageAttributes["metric"].Value != "" {
		t.Fatalf("device-level alert: %+v", bySubject)
	}
}

// TestQueueFullDeadLetters: the shard loop never waits; what does not fit
// is dead-lettered (by Run's goroutine) and counted.
func TestQueueFullDeadLetters(t *testing.T) {
	var dead []error
	p, _ := New(aws.Config{Region: "us-east-1"}, Options{TopicARN: "arn:aws:sns:us-east-1:1:t", QueueSize: 1,
		DeadLetter: func(_ *rules.Alert, err error) { dead = append(dead, err) }})
	for range 3 {
		p.Enqueue(firing)
	}
	if p.Dropped.Load() != 2 || p.Lost.Load() != 1 {
		t.Fatalf("dropped %d, lost %d: want 2 dropped, 1 of them lost (a dead-letter queue of 1)", p.Dropped.Load(), p.Lost.Load())
	}
	p.Close()
	p.Close()
	p.Enqueue(firing) // closed, and the dead-letter queue is full: lost
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Run(ctx) // the queued alert is dead-lettered, not published
	if len(dead) != 2 || !errors.Is(dead[0], ErrQueueFull) || !errors.Is(dead[1], context.Canceled) || p.Lost.Load() != 2 {
		t.Fatalf("dead letters after a cancelled Run: %v, lost %d", dead, p.Lost.Load())
	}
	p.Enqueue(firing) // after Run: counted, never a send on a closed channel
	if p.Lost.Load() != 3 {
		t.Fatalf("lost %d after Run, want 3", p.Lost.Load())
	}
}

// TestEnqueueNeverWaitsOnDeadLetters: with SNS unreachable and the
// dead-letter store stuck (an S3 PUT that does not return), Enqueue still
// returns at once for every alert, and every alert is accounted for:
// published, dead-lettered or lost. Before, Enqueue called DeadLetter
// itself under its lock, and the shard loop waited on S3.
func TestEnqueueNeverWaitsOnDeadLetters(t *testing.T) {
	release := make(chan struct{})
	var dead atomic.Int64
	p, _ := New(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String("http://127.0.0.1:1"), Credentials: aws.AnonymousCredentials{}},
		Options{TopicARN: "arn:aws:sns:us-east-1:1:t", QueueSize: 4, MaxAttempts: 1,
			DeadLetter: func(*rules.Alert, error) { <-release; dead.Add(1) }})
	ran := make(chan struct{})
	go func() { p.Run(context.Background()); close(ran) }()
	const n = 200
	enqueued := make(chan struct{})
	go func() {
		for range n {
			p.Enqueue(firing)
		}
		close(enqueued)
	}()
	select {
	case <-enqueued:
	case <-time.After(30 * time.Second):
		t.Fatal("Enqueue waited on the stuck dead-letter store")
	}
	close(release)
	p.Close()
	<-ran
	if got := p.Sent.Load() + uint64(dead.Load()) + p.Lost.Load(); got != n || p.Sent.Load() != 0 {
		t.Fatalf("sent %d, dead-lettered %d, lost %d: want the %d alerts accounted for, none sent", p.Sent.Load(), dead.Load(), p.Lost.Load(), n)
	}
}

func TestInput(t *testing.T) {
	in, err := Input(firing, "arn:aws:sns:us-east-1:1:alerts.fifo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *in.MessageGroupId != "keg-0042" || *in.MessageDeduplicationId != "a1" || *in.MessageStructure != "json" {
		t.Fatalf("FIFO fields: %+v", in)
	}
	var m map[string]string
	json.Unmarshal([]byte(*in.Message), &m)
	if !strings.Contains(m["email"], firing.Message) || !strings.Contains(m["lambda"], `"alert_id":"a1"`) {
		t.Fatalf("message: %v", m)
	}
	long := *firing
	long.Rule = strings.Repeat("r", 64)
	long.Device = strings.Repeat("d", 128)
	if s := Subject(&long); len(s) > 100 || !strings.HasSuffix(s, "...") {
		t.Fatalf("subject of %d characters: %q", len(s), s)
	}
	if in, _ := Input(firing, "arn:aws:sns:us-east-1:1:alerts", nil); in.MessageGroupId != nil {
		t.Fatal("group id on a standard topic")
	}
}

type memStore map[string][]byte

func (m memStore) Get(_ context.Context, key string) ([]byte, error) {
	if b, ok := m[key]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%s: %w", key, s3sink.ErrNotFound)
}

func (m memStore) GetAtMost(ctx context.Context, key string, max int64) ([]byte, error) {
	b, err := m.Get(ctx, key)
	if err == nil && int64(len(b)) > max {
		return nil, s3sink.ErrTooLarge
	}
	return b, err
}

func (m memStore) List(_ context.Context, prefix string) ([]string, error) {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (m memStore) Put(_ context.Context, key string, data []byte) (bool, error) {
	if _, ok := m[key]; ok {
		return false, nil
	}
	m[key] = data
	return true, nil
}

// TestUnpublishedAlertsReachTheDeadLetterPrefix: with SNS unreachable,
// the alert ends up as a JSON line under deadletter/, with the reason.
func TestUnpublishedAlertsReachTheDeadLetterPrefix(t *testing.T) {
	store := memStore{}
	var storeErrs []error
	a := *firing
	a.ID = "00000000000000a1"
	p, _ := New(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("x", "y", ""),
		BaseEndpoint: aws.String("http://127.0.0.1:1")}, // nothing listens on port 1
		Options{TopicARN: "arn:aws:sns:us-east-1:1:t", MaxAttempts: 1,
			DeadLetter: DeadLetterTo(store, "tapline", nil, func(err error) { storeErrs = append(storeErrs, err) })})
	p.Enqueue(&a)
	p.Close()
	p.Run(context.Background())
	if p.Failed.Load() != 1 || len(storeErrs) != 0 {
		t.Fatalf("failed %d, store errors %v", p.Failed.Load(), storeErrs)
	}
	data, ok := store["tapline/deadletter/dt=2025-11-27/hour=18/alert-00000000000000a1-firing.jsonl"]
	if !ok {
		t.Fatalf("objects: %v", store)
	}
	var line struct {
		Reason string
		Error  string
		Alert  map[string]any
	}
	if err := json.Unmarshal(data, &line); err != nil || line.Reason != "alert_not_published" || line.Alert["device_id"] != "keg-0042" || line.Error == "" {
		t.Fatalf("dead letter %s: %v", data, err)
	}
}

// TestRedrive dead-letters alerts to a real S3 server (versitygw) as the
// service does when SNS is down, then redrives them through a real SNS
// server (goaws): oldest first, each once across runs, and a tampered
// object refused.
func TestRedrive(t *testing.T) {
	ctx := context.Background()
	s3srv, err := versitygw.Start(t.TempDir())
	server.Require(t, err)
	defer s3srv.Stop()
	store, err := s3sink.New(versitygw.AWSConfig(s3srv.Endpoint), s3sink.Options{Bucket: "lake"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("lake")}); err != nil {
		t.Fatal(err)
	}

	snsEndpoint, received := alertsSubscriber(t)

	// Three alerts SNS refused, dead-lettered as the service does.
	leak := *firing
	leak.ID, leak.Incident, leak.At = "00000000000000a1", "10000000000000a1", firing.At+60_000
	leakEarlier := *firing
	leakEarlier.ID, leakEarlier.Incident, leakEarlier.Device = "00000000000000b2", "10000000000000b2", "keg-0007"
	back := *resolved
	back.ID, back.Incident, back.At = "00000000000000a0", "10000000000000a0", leak.At // same time as leak and first by key: FIRING goes first
	var lost []error
	dead := DeadLetterTo(store, "tapline", nil, func(err error) { lost = append(lost, err) })
	for _, a := range []*rules.Alert{&back, &leak, &leakEarlier} {
		dead(a, errors.New("SNS down"))
	}
	if len(lost) > 0 {
		t.Fatal(lost)
	}
	// A record's dead letters in the same partition are not alerts, and
	// an alert edited in the bucket to aim at another device's topic is
	// refused.
	part := strings.TrimSuffix(mustKey(t, leak), "alert-00000000000000a1-firing.jsonl")
	store.Put(ctx, part+"shardId-000000000000-1-2.jsonl", []byte(`{"reason":"late"}`+"\n"))
	forged := leak
	forged.ID = "00000000000000d4"
	dead(&forged, errors.New("SNS down"))
	body, _ := store.Get(ctx, mustKey(t, forged))
	store.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("lake"), Key: aws.String(mustKey(t, forged))})
	store.Put(ctx, mustKey(t, forged), []byte(strings.Replace(string(body), `"keg-0042"`, `"keg-0042/../+"`, 1)))
	// Objects planted by whoever can write the prefix, each well formed
	// and under the key its alert derives: a rule the service does not
	// have, a rule with a line break (SNS refuses such a subject, which
	// used to stop every run) sorted first by its 1970 time, and an
	// object too large to read.
	planted := func(a rules.Alert, pad int) {
		line, _ := json.Marshal(deadAlert{reasonNotPublished, "SNS down", a.AlertMessage()})
		store.Put(ctx, mustKey(t, a), append(line, bytes.Repeat([]byte(" "), pad)...))
	}
	evil := leak
	evil.ID, evil.Rule = "00000000000000f1", "keg-evil"
	planted(evil, 0)
	early := leak
	early.ID, early.Rule, early.At, early.Start, early.End = "00000000000000f2", "keg-leak\nSubject: x", 0, 0, 0
	planted(early, 0)
	huge := leak
	huge.ID = "00000000000000f3"
	planted(huge, 600<<10)

	p, err := New(aws.Config{
		Region:       goaws.Region,
		Credentials:  credentials.NewStaticCredentialsProvider("x", "y", ""),
		BaseEndpoint: aws.String(snsEndpoint),
	}, Options{TopicARN: goaws.TopicARN("tapline-alerts"), DeadLetter: func(*rules.Alert, error) {}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := p.Redrive(ctx, store, RedriveOptions{Prefix: "tapline", Rules: redriveRules(t)})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Found != 7 || rep.Sent != 3 || rep.Already != 0 || len(rep.Refused) != 4 {
		t.Fatalf("first run: %+v", rep)
	}
	refusals := fmt.Sprint(rep.Refused)
	for _, want := range []string{"not a thing name", `rule "keg-evil"`, "control character", "too large"} {
		if !strings.Contains(refusals, want) {
			t.Errorf("no refusal says %q: %s", want, refusals)
		}
	}
	want := []string{Subject(&leakEarlier), Subject(&leak), Subject(&back)}
	waitFor := func(n int) []string {
		var subjects []string
		for _, n := range received(n) {
			subjects = append(subjects, n.Subject)
		}
		return subjects
	}
	if got := waitFor(3); !slices.Equal(got, want) {
		t.Fatalf("subscriber got %q, want %q", got, want)
	}

	rep, err = p.Redrive(ctx, store, RedriveOptions{Prefix: "tapline", Rules: redriveRules(t)})
	if err != nil || rep.Sent != 0 || rep.Already != 3 || len(rep.Refused) != 4 {
		t.Fatalf("second run: %+v, %v", rep, err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := waitFor(3); len(got) != 3 {
		t.Fatalf("the second run sent again: %q", got)
	}

	// With since, only the partitions from then on are listed: a fresh
	// alert is found, the year-old ones are not looked at.
	fresh := leak
	fresh.ID, fresh.At = "00000000000000e5", time.Now().UnixMilli()
	dead(&fresh, errors.New("SNS down"))
	rep, err = p.Redrive(ctx, store, RedriveOptions{Prefix: "tapline", Since: time.Now().Add(-time.Hour), Rules: redriveRules(t)})
	if err != nil || rep.Found != 1 || rep.Sent != 1 {
		t.Fatalf("since an hour ago: %+v, %v", rep, err)
	}
	if got := waitFor(4); len(got) != 4 || got[3] != Subject(&fresh) {
		t.Fatalf("subscriber got %q", got)
	}
}

// alertsSubscriber starts goaws with the alerts topic and an HTTP
// subscriber; received(n) waits up to 10 s for n notifications and
// returns those it has.
func alertsSubscriber(t *testing.T) (endpoint string, received func(n int) []notification) {
	t.Helper()
	var mu sync.Mutex
	var got []notification
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n notification
		json.NewDecoder(r.Body).Decode(&n)
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)
	srv, err := goaws.Start(t.TempDir(), map[string][]string{"tapline-alerts": {recv.URL}})
	server.Require(t, err)
	t.Cleanup(srv.Stop)
	return srv.Endpoint, func(n int) []notification {
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			ns := slices.Clone(got)
			mu.Unlock()
			if len(ns) >= n || time.Now().After(deadline) {
				return ns
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// redriveRules are the rules the test alerts come from.
func redriveRules(t *testing.T) *rules.Config {
	t.Helper()
	rs, err := rules.Parse("rules.yml", []byte(`
rules:
  - {name: keg-leak, kind: threshold, severity: critical, metric: flow_lpm, window: 1m, aggregate: min, above: 0.05}
  - {name: keg-offline, kind: missing, severity: warning, after: 5m}
`))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestRedriveVerifiesTheMAC: with a MAC key, only the service's own dead
// letters are redriven: an unsigned object that would pass every other
// check, and a signed one edited to aim at another device, are refused;
// what is published carries a MAC the command Lambda verifies.
func TestRedriveVerifiesTheMAC(t *testing.T) {
	ctx := context.Background()
	key := []byte(strings.Repeat("k", schemas.MinMACKey))
	snsEndpoint, received := alertsSubscriber(t)

	store := memStore{}
	leak := *firing
	leak.ID, leak.Incident = "00000000000000a1", "10000000000000a1"
	DeadLetterTo(store, "tapline", key, func(err error) { t.Error(err) })(&leak, errors.New("SNS down"))
	unsigned := leak
	unsigned.ID = "00000000000000c3"
	line, _ := json.Marshal(deadAlert{reasonNotPublished, "SNS down", unsigned.AlertMessage()})
	store.Put(ctx, mustKey(t, unsigned), line)
	edited := leak
	edited.ID = "00000000000000c4"
	DeadLetterTo(store, "tapline", key, func(err error) { t.Error(err) })(&edited, errors.New("SNS down"))
	store[mustKey(t, edited)] = bytes.Replace(store[mustKey(t, edited)], []byte(`"keg-0042"`), []byte(`"keg-0043"`), 1)

	p, err := New(aws.Config{Region: goaws.Region, Credentials: credentials.NewStaticCredentialsProvider("x", "y", ""), BaseEndpoint: aws.String(snsEndpoint)},
		Options{TopicARN: goaws.TopicARN("tapline-alerts"), MACKey: key, DeadLetter: func(*rules.Alert, error) {}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := p.Redrive(ctx, store, RedriveOptions{Prefix: "tapline", Rules: redriveRules(t)})
	if err != nil || rep.Found != 3 || rep.Sent != 1 || len(rep.Refused) != 2 {
		t.Fatalf("redrive: %+v, %v", rep, err)
	}
	for _, r := range rep.Refused {
		if !errors.Is(r, schemas.ErrUnauthentic) {
			t.Errorf("refused for another reason: %v", r)
		}
	}
	got := received(1)
	if len(got) != 1 {
		t.Fatalf("published %d", len(got))
	}
	var doc map[string]string
	var m schemas.AlertMessage
	if json.Unmarshal([]byte(got[0].Message), &doc) != nil || json.Unmarshal([]byte(doc["lambda"]), &m) != nil || m.Verify(key) != nil || m.ID != leak.ID {
		t.Fatalf("published message does not verify: %s", got[0].Message)
	}
}

func mustKey(t *testing.T, a rules.Alert) string {
	t.Helper()
	k, err := layout.AlertDeadLetterKey("tapline", a.At, a.ID, string(a.State))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// offlineGroup is n offline alerts as one notification (rules.Router).
func offlineGroup(n int, msg string) *rules.Alert {
	var g []rules.Alert
	for i := range n {
		a := *resolved
		a.State, a.Device = rules.Firing, fmt.Sprintf("keg-%04d", i)
		a.ID, a.Incident = fmt.Sprintf("%016x", i+1), fmt.Sprintf("%016x", 1000+i)
		a.Message = a.Device + msg
		g = append(g, a)
	}
	first := g[0]
	first.Group = g[1:]
	return &first
}

// TestPublishGroup: 100 kegs offline in the same minute, grouped by rule,
// reach the subscriber as one SNS message listing them all, signed as a
// whole; a group too large for one message goes as several, none lost.
func TestPublishGroup(t *testing.T) {
	endpoint, received := alertsSubscriber(t)
	key := bytes.Repeat([]byte("k"), schemas.MinMACKey)
	p, err := New(aws.Config{Region: goaws.Region, Credentials: credentials.NewStaticCredentialsProvider("x", "y", ""), BaseEndpoint: aws.String(endpoint)},
		Options{TopicARN: goaws.TopicARN("tapline-alerts"), MACKey: key, DeadLetter: func(_ *rules.Alert, err error) { t.Errorf("dead letter: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Run(context.Background()); close(done) }()
	p.Enqueue(offlineGroup(100, " silent for 5m0s (>= 5m) [keg-offline]"))
	big := offlineGroup(100, " "+strings.Repeat("x", 900))
	p.Enqueue(big)
	p.Close()
	<-done
	got := received(int(p.Sent.Load()))
	if p.Sent.Load() < 3 || len(got) != int(p.Sent.Load()) {
		t.Fatalf("sent %d, received %d", p.Sent.Load(), len(got))
	}
	devices := map[string]int{}
	for i, n := range got {
		var body map[string]string
		msg := n.Message
		if json.Unmarshal([]byte(msg), &body) == nil && body["http"] != "" { // goaws forwards the whole document
			msg = body["http"]
		}
		var m schemas.AlertMessage
		if err := json.Unmarshal([]byte(msg), &m); err != nil {
			t.Fatal(err)
		}
		if err := m.Verify(key); err != nil {
			t.Fatal(err)
		}
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		if size := n.MessageAttributes["group_size"].Value; size != fmt.Sprint(len(m.Group)+1) {
			t.Errorf("group_size %q for %d alerts", size, len(m.Group)+1)
		}
		if i == 0 && (len(m.Group) != 99 || !strings.HasPrefix(n.Subject, "FIRING warning keg-offline: 100 alerts: keg-0000 keg-0001")) {
			t.Fatalf("the first group: %d alerts, subject %q", len(m.Group)+1, n.Subject)
		}
		for _, a := range m.Alerts() {
			devices[a.Device]++
		}
	}
	if len(devices) != 100 {
		t.Fatalf("%d devices across the messages", len(devices))
	}
	for d, n := range devices {
		if n != 2 {
			t.Errorf("%s in %d messages, want 2 (one per group)", d, n)
		}
	}
	t.Logf("a group of 100 short alerts: 1 message; of 100 long ones: %d", len(got)-1)
}
