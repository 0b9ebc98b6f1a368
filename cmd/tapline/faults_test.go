package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/tapline/tapline/deploy/local/faultproxy"
	"github.com/tapline/tapline/deploy/local/goaws"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/pipeline/service"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// The fault-injection suite (benchmarks/RELIABILITY.md): each test runs
// `tapline run` against the local stack behind fault proxies, injects one
// kind of fault, and checks with the verifier that every acknowledged
// record is in S3 exactly once and every window and alert row equals the
// in-process oracle's.

// long is set by `make test-faults` (TAPLINE_FAULTS_LONG=1): the issue's
// full durations instead of the short forms `make test` runs.
var long = os.Getenv("TAPLINE_FAULTS_LONG") != ""

// pick returns the short or the long form of a test parameter.
func pick[T any](short, full T) T {
	if long {
		return full
	}
	return short
}

// faultEnv is a stack with a fault proxy in front of every service.
type faultEnv struct {
	t                 *testing.T
	st                *stack.Stack
	kinesis, dynamodb *faultproxy.Proxy
	s3, sns           *faultproxy.Proxy
	sub               *subscriber
	env               []string
	bin               string
	stream            string
	rules             *rules.Config // the oracle's first rules: consumertest.Rules unless set
}

func newFaultEnv(t *testing.T, shards int) *faultEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("fault injection: starts the local stack and tapline")
	}
	e := &faultEnv{t: t, bin: binary(t, "."), stream: "telemetry", sub: &subscriber{ids: map[string]int{}, alerts: map[string]map[string]any{}}}
	recv := httptest.NewServer(e.sub)
	t.Cleanup(recv.Close)
	dir := t.TempDir()
	var err error
	e.st, err = stack.Start(stack.Options{Dir: dir, Topics: map[string][]string{"tapline-alerts": {recv.URL}}})
	server.Require(t, err)
	t.Cleanup(e.st.Stop)
	proxy := func(target string) *faultproxy.Proxy {
		p, err := faultproxy.Start(target, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		return p
	}
	e.kinesis, e.dynamodb, e.s3, e.sns = proxy(e.st.Kinesis.Endpoint), proxy(e.st.DynamoDB.Endpoint), proxy(e.st.S3.Endpoint), proxy(e.st.SNS.Endpoint)
	ctx := context.Background()
	if err := stack.CreateStream(ctx, e.st.KinesisClient(), e.stream, shards); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.S3Store(ctx, "lake"); err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(dir, "rules.yml")
	os.WriteFile(rulesFile, []byte(consumertest.Rules), 0o644)
	e.env = []string{
		"AWS_ACCESS_KEY_ID=" + stack.AccessKey, "AWS_SECRET_ACCESS_KEY=" + stack.SecretKey, "AWS_REGION=" + stack.Region,
		"TAPLINE_ENDPOINTS_KINESIS=" + e.kinesis.URL, "TAPLINE_ENDPOINTS_DYNAMODB=" + e.dynamodb.URL,
		"TAPLINE_ENDPOINTS_S3=" + e.s3.URL, "TAPLINE_ENDPOINTS_SNS=" + e.sns.URL,
		"TAPLINE_APP=faults", "TAPLINE_STREAM=" + e.stream, "TAPLINE_S3_BUCKET=lake", "TAPLINE_S3_PREFIX=tapline",
		"TAPLINE_SNS_TOPIC_ARN=" + goaws.TopicARN("tapline-alerts"), "TAPLINE_RULES_FILE=" + rulesFile,
		"TAPLINE_IDLE_TIMEOUT=10m", "TAPLINE_BATCH_MAX_ROWS=3000", "TAPLINE_BATCH_FLUSH_EVERY=2m",
		"TAPLINE_KCL_SHARD_SYNC=300ms", "TAPLINE_KCL_FAILOVER_TIME=3s", "TAPLINE_KCL_IDLE_BETWEEN_READS=100ms",
		"TAPLINE_KCL_MAX_RECORDS=1000", "TAPLINE_SHUTDOWN_TIMEOUT=30s",
	}
	return e
}

func (e *faultEnv) put(recs []stack.Record) {
	e.t.Helper()
	if err := stack.Put(context.Background(), e.st.KinesisClient(), e.stream, recs); err != nil {
		e.t.Fatal(err)
	}
}

func (e *faultEnv) start(name string) *proc { return startProc(e.t, e.bin, name, e.env) }

// oracle runs the pipeline in process over the stream, with the service's
// settings, making the decisions the service recorded so far (cuts,
// reloads) where it recorded them.
func (e *faultEnv) oracle() *consumertest.Result {
	e.t.Helper()
	ctx := context.Background()
	lake, err := e.st.S3Store(ctx, "lake")
	if err != nil {
		e.t.Fatal(err)
	}
	rec, err := journal.Decisions(ctx, lake, "tapline", "faults")
	if err != nil {
		e.t.Fatal(err)
	}
	return e.oracleWith(rec)
}

// oracleWith is oracle with the decisions given.
func (e *faultEnv) oracleWith(rec journal.Recorded) *consumertest.Result {
	e.t.Helper()
	var specs []windows.Spec
	for _, s := range []string{"1m", "5m/1m"} {
		sp, _ := windows.ParseSpec(s)
		specs = append(specs, sp)
	}
	rcfg, err := rules.Parse("rules.yml", []byte(consumertest.Rules))
	if err != nil {
		e.t.Fatal(err)
	}
	if e.rules != nil {
		rcfg = e.rules
	}
	want, err := consumertest.Oracle(context.Background(), e.st.KinesisClient(), e.stream, "tapline",
		pipeline.Options{Windows: windows.Options{Specs: specs, AllowedLateness: 30 * time.Second}, Rules: rcfg, MaxAhead: service.DefaultMaxAhead},
		batch.Options{MaxRows: 3000, FlushEvery: 2 * time.Minute}, rec)
	if err != nil {
		e.t.Fatal(err)
	}
	return want
}

// waitSettled waits until every checkpoint is where an oracle computed
// from the decisions recorded so far acknowledged, recomputing it while
// the workers still record some (lease handoffs cut batches), and
// returns that oracle.
func (e *faultEnv) waitSettled(timeout time.Duration) *consumertest.Result {
	e.t.Helper()
	// Settled is the checkpoints at the oracle's acknowledgements with
	// nothing in the lease table moving for longer than a balancing
	// decision takes (a worker over its share waits a heartbeat lifetime,
	// 2 s here, then cuts and hands off): a handoff that began after the
	// oracle was taken cuts a batch the oracle has not recorded
	// (RELIABILITY.md, fault 15).
	const quiet = 5 * time.Second
	db := e.st.DynamoDBClient()
	var want *consumertest.Result
	last := time.Time{}
	var table string
	var since time.Time
	waitFor(e.t, "checkpoints at the oracle's acknowledgements, and the lease table still", timeout, func() bool {
		if time.Since(last) > 2*time.Second {
			want, last = e.oracle(), time.Now()
		}
		owner, cp := leases(db, "faults")
		if now := fmt.Sprint(owner, cp); now != table {
			table, since = now, time.Now()
		}
		for id, seq := range want.Acked {
			if cp[id] != seq {
				return false
			}
		}
		return time.Since(since) >= quiet
	})
	return e.oracle() // the decisions may have grown while we looked: verify against the latest
}

// waitAcked waits until every checkpoint is where the oracle acknowledged.
func (e *faultEnv) waitAcked(want *consumertest.Result, timeout time.Duration) time.Duration {
	e.t.Helper()
	db := e.st.DynamoDBClient()
	return waitFor(e.t, "checkpoints at the oracle's acknowledgements", timeout, func() bool {
		_, cp := leases(db, "faults")
		for id, seq := range want.Acked {
			if cp[id] != seq {
				return false
			}
		}
		return true
	})
}

// verify reads every object from S3 (directly, not through the proxy)
// and checks it against the oracle's.
func (e *faultEnv) verify(want *consumertest.Result) consumertest.Report {
	e.t.Helper()
	rep := e.compare(want)
	if !rep.OK() {
		e.t.Errorf("verifier: %s", rep)
	}
	return rep
}

// compare is verify without the verdict.
func (e *faultEnv) compare(want *consumertest.Result) consumertest.Report {
	e.t.Helper()
	ctx := context.Background()
	store, err := e.st.S3Store(ctx, "lake")
	if err != nil {
		e.t.Fatal(err)
	}
	keys, err := store.List(ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	got := consumertest.Objects{}
	for _, k := range keys {
		if got[k], err = store.Get(ctx, k); err != nil {
			e.t.Fatal(err)
		}
	}
	dir := e.t.TempDir()
	a, b := filepath.Join(dir, "got"), filepath.Join(dir, "want")
	if err := got.Data("tapline").WriteDir(a); err != nil {
		e.t.Fatal(err)
	}
	if err := want.Objects.WriteDir(b); err != nil {
		e.t.Fatal(err)
	}
	rep, err := consumertest.Verify(a, b, "tapline")
	if err != nil {
		e.t.Fatal(err)
	}
	return rep
}

func (e *faultEnv) alertsReceived(want *consumertest.Result) (lost, dup int) {
	e.sub.mu.Lock()
	defer e.sub.mu.Unlock()
	for _, a := range want.Alerts {
		if e.sub.ids[a.ID] == 0 {
			lost++
		}
	}
	for _, n := range e.sub.ids {
		if n > 1 {
			dup += n - 1
		}
	}
	return
}

// Fault 1: SIGKILL right after an S3 PUT of data and before the
// checkpoint, three times, with windows open.
func TestFaultKillAfterPut(t *testing.T) {
	e := newFaultEnv(t, 2)
	e.put(consumertest.Telemetry(100, 0, 150))
	e.put(consumertest.Heartbeat(100))
	var target atomic.Pointer[proc]
	var kills atomic.Int64
	e.s3.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
		// Every 7th data PUT, at most three times: the object is written,
		// the process dies before its state and checkpoint.
		if r.Method == "PUT" && strings.Contains(r.URL.Path, "/windows/") && r.N%7 == 3 && kills.Load() < 3 {
			if p := target.Load(); p != nil {
				return faultproxy.Fault{After: func() {
					if kills.Add(1) <= 3 {
						p.cmd.Process.Signal(syscall.SIGKILL)
					}
				}}
			}
		}
		return faultproxy.Fault{}
	})
	want := e.oracle()
	began := time.Now()
	for i := 0; ; i++ {
		p := e.start(fmt.Sprintf("w%d", i))
		target.Store(p)
		done := make(chan struct{})
		go func() {
			e.waitAcked(want, 120*time.Second)
			close(done)
		}()
		select {
		case <-p.done: // killed: start the next one
			t.Logf("worker %d killed (%d kills so far)", i, kills.Load())
			continue
		case <-done:
		}
		break
	}
	rep := e.verify(want)
	lost, dup := e.alertsReceived(want)
	t.Logf("RELIABILITY kill-after-put: %d SIGKILLs; %s; alerts lost %d, duplicated %d (at least once); recovered in %v",
		kills.Load(), rep, lost, dup, time.Since(began).Round(time.Millisecond))
	if kills.Load() < 1 {
		t.Fatal("no kill was injected")
	}
}

// Fault 5: Kinesis throttling on a share of GetRecords, and an expired
// iterator.
func TestFaultKinesisThrottling(t *testing.T) {
	e := newFaultEnv(t, 2)
	e.put(consumertest.Telemetry(100, 0, 150))
	e.put(consumertest.Heartbeat(100))
	e.kinesis.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
		if r.Op == "GetRecords" {
			switch {
			case r.N == 9:
				return faultproxy.ExpiredIterator()
			case r.N%4 == 0:
				return faultproxy.Throttle()
			}
		}
		return faultproxy.Fault{}
	})
	want := e.oracle()
	e.start("w")
	took := e.waitAcked(want, 120*time.Second)
	rep := e.verify(want)
	t.Logf("RELIABILITY kinesis-throttling: %d faults injected (1 in 4 GetRecords throttled, 1 expired iterator); %s; caught up in %v",
		e.kinesis.Injected.Load(), rep, took.Round(time.Millisecond))
}

// Fault 7: S3 503 SlowDown, connections reset before the request, and
// PUTs that succeed whose response is lost.
func TestFaultS3Errors(t *testing.T) {
	e := newFaultEnv(t, 2)
	e.put(consumertest.Telemetry(100, 0, 150))
	e.put(consumertest.Heartbeat(100))
	e.s3.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
		if r.Method != "PUT" {
			return faultproxy.Fault{}
		}
		switch r.N % 10 {
		case 1:
			return faultproxy.ServerError(true)
		case 4:
			return faultproxy.Fault{Reset: true}
		case 7:
			return faultproxy.Fault{Lost: true}
		}
		return faultproxy.Fault{}
	})
	want := e.oracle()
	p := e.start("w")
	took := e.waitAcked(want, 180*time.Second)
	rep := e.verify(want)
	t.Logf("RELIABILITY s3-errors: %d faults injected (503, reset, lost response: 3 PUTs in 10; the SDK retries them); %s; %v PUTs found already written (lost responses retried); caught up in %v",
		e.s3.Injected.Load(), rep, p.metric("tapline_s3_puts_existing_total"), took.Round(time.Millisecond))
}

// Fault 6: DynamoDB errors and latency on lease and checkpoint writes.
// No checkpoint may move backwards.
func TestFaultDynamoDB(t *testing.T) {
	e := newFaultEnv(t, 2)
	e.put(consumertest.Telemetry(100, 0, 150))
	e.put(consumertest.Heartbeat(100))
	e.dynamodb.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
		if r.Op == "PutItem" || r.Op == "UpdateItem" {
			switch r.N % 5 {
			case 1:
				return faultproxy.ServerError(false)
			case 3:
				return faultproxy.Fault{Delay: 300 * time.Millisecond}
			}
		}
		return faultproxy.Fault{}
	})
	want := e.oracle()
	stopWatch := e.watchCheckpoints()
	e.start("w")
	took := e.waitAcked(want, 180*time.Second)
	stopWatch()
	rep := e.verify(want)
	t.Logf("RELIABILITY dynamodb-errors: %d faults injected (1 in 5 lease/checkpoint writes fails, 1 in 5 delayed 300 ms); %s; checkpoints polled every 20 ms; caught up in %v",
		e.dynamodb.Injected.Load(), rep, took.Round(time.Millisecond))
}

// seqLess compares Kinesis sequence numbers (decimal strings).
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// Fault 9: 10,000 poison records mixed with valid ones; none crashes the
// shard, every valid record is kept, every poison one dead-lettered.
func TestFaultPoisonRecords(t *testing.T) {
	e := newFaultEnv(t, 2)
	poison := [][]byte{
		[]byte(`{"device_id":"keg-0001","ts":`),
		[]byte(`{"device_id":"keg-0001","ts":1795806120000,"metrics":{"temp_c":NaN}}`),
		[]byte(`{"device_id":"keg-0001","ts":1795806120000,"metrics":{"temp_c":1e400}}`),
		[]byte(`{"device_id":"../x","ts":1795806120000,"metrics":{"temp_c":4}}`),
		[]byte(`{"device_id":"a/+/#","ts":1795806120000,"metrics":{"temp_c":4}}`),
		[]byte(`{"device_id":"$aws","ts":1795806120000,"metrics":{"temp_c":4}}`),
		[]byte(`{"device_id":"kеg-0001","ts":1795806120000,"metrics":{"temp_c":4}}`), // Cyrillic е
		[]byte("{\"device_id\":\"keg-\xff\xfe\",\"ts\":1795806120000,\"metrics\":{\"temp_c\":4}}"),
		[]byte(`[]`),
		[]byte(`{"device_id":"keg-0001","ts":1795806120000,"metrics":{"temp_c":4},"metrics":{"temp_c":5}}`),
	}
	// Ten records of nearly 1 MiB, Kinesis's limit (more would only wait
	// on the library's 2 MB/s per-shard read budget).
	huge := append(append([]byte(`{"device_id":"keg-0001","ts":1795806120000,"pad":"`), make([]byte, 1000<<10)...), `","metrics":{"temp_c":4}}`...)
	for i := range huge[50 : len(huge)-30] {
		huge[50+i] = 'x'
	}
	valid := consumertest.Telemetry(100, 0, 100)
	var recs []stack.Record
	for i, r := range valid {
		recs = append(recs, r)
		switch {
		case i < 10:
			recs = append(recs, stack.Record{Key: fmt.Sprintf("poison-%d", i), Data: huge})
		case i < 10_000:
			recs = append(recs, stack.Record{Key: fmt.Sprintf("poison-%d", i%50), Data: poison[i%len(poison)]})
		}
	}
	e.put(recs)
	e.put(consumertest.Heartbeat(100))
	want := e.oracle()
	p := e.start("w")
	took := e.waitAcked(want, 180*time.Second)
	rep := e.verify(want)
	var rejected float64
	_, body := p.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "tapline_records_rejected_total{") {
			rejected += number(line[strings.LastIndex(line, " ")+1:])
		}
	}
	if p.metric("tapline_shard_failures_total") != 0 {
		t.Errorf("%v shard failures", p.metric("tapline_shard_failures_total"))
	}
	t.Logf("RELIABILITY poison: 10,000 poison records (10 of them 1 MiB) among %d; %s; %v rejected with a reason (incl. the telemetry's own bad and late records); 0 crashes; caught up in %v",
		len(valid), rep, rejected, took.Round(time.Millisecond))
	if rejected < 10_000 {
		t.Errorf("only %v records rejected", rejected)
	}
}

// Fault 2: SIGTERM under load. The service cuts, checkpoints and exits;
// the next one re-reads only what was not yet checkpointed.
func TestFaultSigtermUnderLoad(t *testing.T) {
	e := newFaultEnv(t, 2)
	recs := append(consumertest.Telemetry(200, 0, 150), consumertest.Heartbeat(200)...)
	e.put(recs)
	want := e.oracle()
	a := e.start("a")
	var readA float64
	waitFor(t, "a reads", 60*time.Second, func() bool { readA = a.metric("tapline_records_total"); return readA >= 10_000 })
	sent := time.Now()
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(40 * time.Second):
		t.Fatal("no exit 40 s after SIGTERM")
	}
	shutdown := time.Since(sent)
	if a.err != nil {
		t.Fatalf("exit after SIGTERM: %v", a.err)
	}
	readA = metricFromLog(a, readA)
	b := e.start("b")
	e.waitAcked(want, 120*time.Second)
	waitFor(t, "b reads the rest", 30*time.Second, func() bool { return b.metric("tapline_records_total")+readA >= float64(len(recs)) })
	reprocessed := b.metric("tapline_records_total") + readA - float64(len(recs))
	rep := e.verify(want)
	t.Logf("RELIABILITY sigterm: stopped after reading at least %.0f of %d records; exit 0 in %v; records read again after restart: %.0f; %s",
		readA, len(recs), shutdown.Round(time.Millisecond), reprocessed, rep)
	if reprocessed > 0 {
		t.Errorf("%.0f records read twice after a graceful stop", reprocessed)
	}
}

// metricFromLog returns what a stopped process had read: its last
// /metrics answer is gone, so take the larger of the last figure seen and
// the records its final checkpoints cover (logged per batch).
func metricFromLog(p *proc, seen float64) float64 {
	var total float64
	for _, line := range strings.Split(p.logs(), "\n") {
		if i := strings.Index(line, `"records":`); i >= 0 && strings.Contains(line, `"batch committed"`) {
			rest := line[i+len(`"records":`):]
			if j := strings.IndexAny(rest, ",}"); j >= 0 {
				rest = rest[:j]
			}
			total += number(rest)
		}
	}
	return max(total, seen)
}

// Fault 8: SNS down (every Publish refused) for 10 s, then back. Alerts
// are retried by the SDK and, if they still fail, dead-lettered to S3:
// none is lost.
func TestFaultSNSDown(t *testing.T) {
	e := newFaultEnv(t, 2)
	e.put(consumertest.Telemetry(100, 0, 150))
	e.put(consumertest.Heartbeat(100))
	var down atomic.Bool
	down.Store(true)
	e.sns.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
		if down.Load() && r.Method == "POST" {
			return faultproxy.Fault{Status: 503, Body: `<ErrorResponse><Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error></ErrorResponse>`, Header: map[string]string{"Content-Type": "text/xml"}}
		}
		return faultproxy.Fault{}
	})
	want := e.oracle()
	w := e.start("w")
	e.waitAcked(want, 120*time.Second)
	outage := pick(10*time.Second, 2*time.Minute)
	time.Sleep(outage)
	down.Store(false)
	rep := e.verify(want)
	// Every alert reached the subscriber or the dead-letter prefix.
	ctx := context.Background()
	store, _ := e.st.S3Store(ctx, "lake")
	keys, _ := store.List(ctx, "tapline/deadletter/")
	dead := map[string]bool{}
	for _, k := range keys {
		if i := strings.Index(k, "/alert-"); i >= 0 {
			dead[k[i+len("/alert-"):i+len("/alert-")+16]] = true
		}
	}
	waitFor(t, "alerts delivered or dead-lettered", 60*time.Second, func() bool {
		e.sub.mu.Lock()
		defer e.sub.mu.Unlock()
		for _, a := range want.Alerts {
			if e.sub.ids[a.ID] == 0 && !dead[a.ID] {
				keys, _ = store.List(ctx, "tapline/deadletter/")
				for _, k := range keys {
					if strings.Contains(k, "/alert-"+a.ID) {
						dead[a.ID] = true
					}
				}
				if !dead[a.ID] {
					return false
				}
			}
		}
		return true
	})
	notDelivered, dup := e.alertsReceived(want)
	lost := 0
	for _, a := range want.Alerts {
		e.sub.mu.Lock()
		got := e.sub.ids[a.ID] > 0
		e.sub.mu.Unlock()
		if !got && !dead[a.ID] {
			lost++
		}
	}
	t.Logf("RELIABILITY sns-down: %d publishes refused over %v; %d alerts: %d delivered (after the SDK's retries), %d dead-lettered to S3, %d lost; %d delivered twice; %s",
		e.sns.Injected.Load(), outage, len(want.Alerts), len(want.Alerts)-notDelivered, len(dead), lost, dup, rep)
	if lost > 0 {
		t.Errorf("%d alerts neither delivered nor dead-lettered", lost)
	}

	// The line the stack's AlertsDeadLetteredAlarm counts.
	if n := strings.Count(w.logs(), `"msg":"alert dead-lettered"`); n != len(dead) {
		t.Errorf("%d 'alert dead-lettered' log lines for %d dead-lettered alerts", n, len(dead))
	}
	// SNS is back: an operator redrives the dead-lettered alerts, twice.
	redrive := func() string {
		cmd := exec.Command(e.bin, "redrive-alerts")
		cmd.Env = append(os.Environ(), e.env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("redrive-alerts: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	first := redrive()
	waitFor(t, "every alert at the subscriber after the redrive", 30*time.Second, func() bool {
		notDelivered, _ := e.alertsReceived(want)
		return notDelivered == 0
	})
	second := redrive()
	_, dupAfter := e.alertsReceived(want)
	t.Logf("RELIABILITY sns-down: redrive-alerts: %q; run again: %q; every alert delivered, %d delivered twice", first, second, dupAfter)
	if want := fmt.Sprintf("dead-lettered alerts: %d; published now: %d;", len(dead), len(dead)); !strings.HasPrefix(first, want) {
		t.Errorf("first redrive said %q, want %q...", first, want)
	}
	if !strings.Contains(second, "published now: 0;") {
		t.Errorf("second redrive said %q: it sent again", second)
	}
}

// Fault 8b: SNS down (each publish held a minute, then refused), so the
// alert queue (sns.queue_size 1) fills behind the first alert, and S3
// slow for dead-lettered alerts (each PUT held 2 minutes). The shard hands what
// does not fit to the dead-letter queue and goes on: every record is
// acknowledged within 45 s (about 2 s here), and the rows equal
// the oracle's (alerts the dead-letter queue could not take either are
// counted as lost from it, and are in the alerts dataset). Before, the
// shard goroutine made each dead-letter PUT itself, under the
// publisher's lock, until DeadLetterTo's 30 s timeout: with two alerts
// that found the queue full, past the bound.
func TestFaultSNSDownS3Slow(t *testing.T) {
	e := newFaultEnv(t, 2)
	e.env = append(e.env, "TAPLINE_SNS_QUEUE_SIZE=1")
	e.put(consumertest.Telemetry(100, 0, 150))
	e.put(consumertest.Heartbeat(100))
	e.sns.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
		if r.Method == "POST" {
			return faultproxy.Fault{Delay: time.Minute, Status: 503, Body: `<ErrorResponse><Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error></ErrorResponse>`, Header: map[string]string{"Content-Type": "text/xml"}}
		}
		return faultproxy.Fault{}
	})
	e.s3.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
		if r.Method == "PUT" && strings.Contains(r.URL.Path, "/deadletter/") && strings.Contains(r.URL.Path, "/alert-") {
			return faultproxy.Fault{Delay: 2 * time.Minute}
		}
		return faultproxy.Fault{}
	})
	want := e.oracle()
	w := e.start("w")
	took := e.waitAcked(want, 45*time.Second)
	rep := e.verify(want)
	dropped, lost := w.metric("tapline_sns_dropped_total"), w.metric("tapline_sns_lost_total")
	t.Logf("RELIABILITY sns-down-s3-slow: %d alerts; %v found the queue full, %v of them the dead-letter queue too; every record acknowledged %v after the start with each dead-letter PUT held 2 minutes; %s",
		len(want.Alerts), dropped, lost, took.Round(time.Millisecond), rep)
	if dropped < 2 {
		t.Fatalf("only %v alerts found the queue full: the test does not reach the path it is about", dropped)
	}
	if !rep.OK() {
		t.Error(rep)
	}
}

// Fault 10: clock-skewed devices among good ones, first in a backlog of
// week-old records that arrive all at once, then live. keg-0001..0009 run
// ahead, keg-0010 a year ahead (rejected as future_ts). In the backlog the
// fast clocks lead the others by 10 minutes while all records arrive
// together; each device keeps its own event time, so the others' records
// are not late (before per-device time, 10,695 of 12,000 were): only the
// generator's records an hour behind their own device are (one in 131).
// Live, records arrive as they are sent: the fast clocks' records are
// windowed at arrival + max_ahead, so the others' records are not late.
func TestFaultClockSkew(t *testing.T) {
	e := newFaultEnv(t, 2)
	recs := consumertest.Telemetry(100, 0, 120)
	tsRE := regexp.MustCompile(`"ts":(\d+)`)
	shift := func(data []byte, by time.Duration) []byte {
		return tsRE.ReplaceAllFunc(data, func(m []byte) []byte {
			ms, _ := strconv.ParseInt(string(m[5:]), 10, 64)
			return fmt.Appendf(nil, `"ts":%d`, ms+by.Milliseconds())
		})
	}
	for i := range recs {
		switch d := string(recs[i].Data); {
		case strings.Contains(d, `"keg-000`):
			recs[i].Data = shift(recs[i].Data, 10*time.Minute)
		case strings.Contains(d, `"keg-0010"`):
			recs[i].Data = shift(recs[i].Data, 365*24*time.Hour)
		}
	}
	e.put(recs)
	e.put(consumertest.Heartbeat(100))
	want := e.oracle()
	p := e.start("w")
	e.waitAcked(want, 120*time.Second)
	rep := e.verify(want)
	future := p.metric(`tapline_records_rejected_total{reason="future_ts"}`)
	late := p.metric(`tapline_records_rejected_total{reason="late"}`)
	t.Logf("RELIABILITY clock-skew: backlog: %.0f records a year ahead rejected as future_ts; %.0f of %d dead-lettered as late (records an hour behind their own device); %s", future, late, len(recs), rep)
	if future == 0 {
		t.Errorf("backlog: no record rejected as future_ts: the skew had no effect")
	}
	if late > float64(len(recs))/100 {
		t.Errorf("backlog: %v of %d records late, want at most 1%%", late, len(recs))
	}

	// Live: three rounds, each device once a second, the fast clocks 4
	// minutes ahead (within the allowed future skew) and first in each
	// round (devices 0-8), so without max_ahead every other record would
	// be late.
	var live []stack.Record
	now := time.Now()
	for round := range 3 {
		for d := range 100 {
			ts, id := now.Add(time.Duration(round)*time.Second), consumertest.DeviceID(d)
			if d < 9 {
				ts = ts.Add(4 * time.Minute)
			}
			live = append(live, stack.Record{Key: id, Data: fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"temp_c":4}}`, id, ts.UnixMilli())})
		}
	}
	total := p.metric(`tapline_records_total`) + float64(len(live))
	e.put(live)
	waitFor(t, "the live records read", 60*time.Second, func() bool { return p.metric(`tapline_records_total`) >= total })
	clamped := p.metric(`tapline_records_clamped_total`)
	liveLate := p.metric(`tapline_records_rejected_total{reason="late"}`) - late
	liveFuture := p.metric(`tapline_records_rejected_total{reason="future_ts"}`) - future
	t.Logf("RELIABILITY clock-skew: live: %d records, %.0f of the 4-minute-fast clocks windowed at arrival + max_ahead, %.0f late, %.0f future", len(live), clamped, liveLate, liveFuture)
	if clamped != 27 || liveLate != 0 || liveFuture != 0 {
		t.Errorf("live: %v clamped (want 27), %v late, %v future (want 0)", clamped, liveLate, liveFuture)
	}
}

// Fault 3: three workers racing for leases with staggered starts; one is
// frozen (SIGSTOP) past the failover time, the others take its shards,
// then it is resumed: its late renewals and checkpoints are refused, no
// checkpoint moves backwards, and S3 still equals the oracle.
func TestFaultFrozenWorker(t *testing.T) {
	e := newFaultEnv(t, 4)
	e.put(consumertest.Telemetry(200, 0, 100))
	var workers []*proc
	for i, name := range []string{"a", "b", "c"} {
		if i > 0 {
			time.Sleep(400 * time.Millisecond) // staggered starts
		}
		workers = append(workers, e.start(name))
	}
	db := e.st.DynamoDBClient()
	var owner map[string]string
	waitFor(t, "all 4 shards owned", 30*time.Second, func() bool { owner, _ = leases(db, "faults"); return len(owner) == 4 })
	victim := workers[0]
	for _, w := range workers {
		for _, o := range owner {
			if o == w.name {
				victim = w // a worker that owns something
			}
		}
	}
	stopWatch := e.watchCheckpoints()
	victim.cmd.Process.Signal(syscall.SIGSTOP)
	frozen := time.Now()
	took := waitFor(t, "the frozen worker's shards taken over", 30*time.Second, func() bool {
		o, _ := leases(db, "faults")
		for _, w := range o {
			if w == victim.name {
				return false
			}
		}
		return len(o) == 4
	})
	e.put(append(consumertest.Telemetry(200, 100, 200), consumertest.Heartbeat(200)...)) // written while it sleeps
	time.Sleep(time.Until(frozen.Add(8 * time.Second)))
	victim.cmd.Process.Signal(syscall.SIGCONT)
	want := e.waitSettled(120 * time.Second) // the resumed worker rejoins: leases move by handoffs

	stopWatch()
	rep := e.verify(want)
	t.Logf("RELIABILITY frozen-worker: %s frozen 8 s (failover 3 s), its shards taken over in %v, resumed; lease losses it reported: %v; checkpoints polled every 20 ms; %s",
		victim.name, took.Round(time.Millisecond), victim.metric("tapline_leases_lost_total"), rep)
}

// watchCheckpoints polls every checkpoint until the returned function is
// called, which fails the test if one ever moved backwards.
func (e *faultEnv) watchCheckpoints() (stop func()) {
	done := make(chan struct{})
	backwards := make(chan string, 1)
	go pollCheckpoints(e.st.DynamoDBClient(), done, backwards)
	return func() {
		close(done)
		select {
		case b := <-backwards:
			e.t.Errorf("a checkpoint moved backwards: %s", b)
		default:
		}
	}
}

func pollCheckpoints(client *dynamodb.Client, stop <-chan struct{}, backwards chan<- string) {
	last := map[string]string{}
	for {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		_, cp := leases(client, "faults")
		for id, seq := range cp {
			if prev := last[id]; prev != "" && seq != "SHARD_END" && seqLess(seq, prev) {
				select {
				case backwards <- fmt.Sprintf("%s: %s after %s", id, seq, prev):
				default:
				}
			}
			last[id] = seq
		}
	}
}

// Fault 11: a backlog (every record written before the service starts)
// caught up, then a short soak at a steady rate watching the service's
// resident memory.
func TestFaultBacklogAndSoak(t *testing.T) {
	e := newFaultEnv(t, 4)
	rounds := pick(200, 2160)                         // 33 minutes or 6 hours of a 500-device fleet
	backlog := consumertest.Telemetry(500, 0, rounds) // 100,000 or 1,080,000 records
	e.put(backlog)
	p := e.start("w")
	began := time.Now()
	waitFor(t, "backlog read", pick(180*time.Second, 20*time.Minute), func() bool { return p.metric("tapline_records_total") >= float64(len(backlog)) })
	catchUp := time.Since(began)
	rss0 := rss(p)
	// Soak: 500 devices, a round (500 records) every 100 ms for 30 s.
	soak := pick(30*time.Second, 10*time.Minute)
	end := time.Now().Add(soak)
	var samples []float64
	for round := rounds; time.Now().Before(end); round++ {
		e.put(consumertest.Telemetry(500, round, round+1))
		if round%pick(50, 600) == 0 {
			samples = append(samples, rss(p))
		}
		time.Sleep(100 * time.Millisecond)
	}
	rss1 := rss(p)
	t.Logf("RELIABILITY backlog+soak: %d records caught up in %v (%.0f records/s on kinesalite); soak %v at 5,000 records/s: RSS %.0f MB after catch-up, %.0f MB at the end, samples %v MB; shard failures %v",
		len(backlog), catchUp.Round(time.Millisecond), float64(len(backlog))/catchUp.Seconds(), soak, rss0, rss1, samples, p.metric("tapline_shard_failures_total"))
	if rss1 > 2*rss0+100 {
		t.Errorf("RSS grew from %.0f MB to %.0f MB in a %v soak", rss0, rss1, soak)
	}
}

// rss is the process's resident set, MB.
func rss(p *proc) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return number(strings.TrimSuffix(strings.TrimSpace(kb), "kB")) / 1024
		}
	}
	return 0
}
