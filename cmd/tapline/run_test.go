package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tapline/tapline/deploy/local/goaws"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
	"github.com/tapline/tapline/pipeline/journal"
	"github.com/tapline/tapline/pipeline/service"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// proc is a `tapline run` process.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	out  *syncWriter   // its stdout and stderr
	done chan struct{} // closed when the process exited
	err  error         // its exit status, after done
}

func startProc(t testing.TB, bin, name string, env []string) *proc {
	t.Helper()
	addr, err := server.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, addr: addr, out: &syncWriter{w: &bytes.Buffer{}}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run")
	p.cmd.Env = append(append(os.Environ(), env...), "TAPLINE_WORKER_ID="+name, "TAPLINE_HTTP_ADDR="+addr)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	server.KillWithParent(p.cmd) // a test's timeout runs no cleanup
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- log of %s (last 6000 bytes)\n%s", name, tail(p.logs(), 6000))
		}
	})
	return p
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// logs is what the process wrote so far; safe while it runs.
func (p *proc) logs() string {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return p.out.w.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p *proc) get(path string) (int, string) {
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// number parses a figure a process printed. One that does not parse
// panics, failing the test, rather than reading as 0 and passing a check
// like "0 lost".
func number(s string) float64 {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		panic(fmt.Sprintf("not a number: %q", s))
	}
	return v
}

// metric reads a counter from /metrics (0 if absent).
func (p *proc) metric(name string) float64 {
	_, body := p.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return number(f[1])
		}
	}
	return 0
}

func waitFor(t testing.TB, what string, timeout time.Duration, ok func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !ok() {
		if time.Since(began) > timeout {
			t.Fatalf("%s: not after %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(began)
}

// leases reads the lease table: shard -> owner and checkpoint.
func leases(db *dynamodb.Client, table string) (owner, checkpoint map[string]string) {
	owner, checkpoint = map[string]string{}, map[string]string{}
	out, err := db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table)})
	if err != nil {
		return
	}
	for _, it := range out.Items {
		id := it["ShardID"].(*dtypes.AttributeValueMemberS).Value
		if strings.HasPrefix(id, "_worker/") { // a worker's heartbeat (consumer's lease balancing)
			continue
		}
		if v, ok := it["AssignedTo"].(*dtypes.AttributeValueMemberS); ok {
			owner[id] = v.Value
		}
		if v, ok := it["Checkpoint"].(*dtypes.AttributeValueMemberS); ok {
			checkpoint[id] = v.Value
		}
	}
	return
}

// subscriber is an SNS HTTP subscriber that keeps the alert ids, of
// each alert of a grouped notification too, and the notifications.
type subscriber struct {
	mu     sync.Mutex
	ids    map[string]int
	alerts map[string]map[string]any
	notes  [][]map[string]any // each notification's alerts
}

// alertOf reads the alert JSON from an SNS notification an HTTP
// subscriber received; nil if it holds none.
func alertOf(r *http.Request) map[string]any {
	body, _ := io.ReadAll(r.Body)
	var n struct{ Message string }
	var m map[string]any
	if json.Unmarshal(body, &n) != nil || json.Unmarshal([]byte(n.Message), &m) != nil {
		return nil
	}
	// goaws forwards the whole MessageStructure=json document; real SNS
	// sends the "http" entry.
	if h, ok := m["http"].(string); ok {
		m = nil
		json.Unmarshal([]byte(h), &m)
	}
	return m
}

func (s *subscriber) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := alertOf(r)
	if m == nil {
		return
	}
	all := []map[string]any{m}
	group, _ := m["group"].([]any)
	for _, g := range group {
		if a, ok := g.(map[string]any); ok {
			all = append(all, a)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range all {
		id, _ := a["alert_id"].(string)
		s.ids[id]++
		s.alerts[id] = a
	}
	s.notes = append(s.notes, all)
}

// TestServiceEndToEnd runs `tapline run` as separate processes against
// the local stack: a 4-shard stream, 250 devices, 100,500 records with
// injected leaks and warm coolers, bad and late records. One process is
// killed (SIGKILL) mid-stream; two more share the stream; one of them is
// killed and the other takes its shards within the failover time; the
// survivor stops on SIGTERM. Through all of it the objects in S3 must be
// the in-process oracle's, byte for byte; the expected alerts must reach
// the SNS HTTP subscriber; the checkpoints must be where the delivery
// promise says, each with its state.
func TestServiceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: starts the local stack and three services")
	}
	dir := t.TempDir()
	bin := binary(t, ".")
	sub := &subscriber{ids: map[string]int{}, alerts: map[string]map[string]any{}}
	recv := httptest.NewServer(sub)
	defer recv.Close()
	st, err := stack.Start(stack.Options{Dir: dir, Topics: map[string][]string{"tapline-alerts": {recv.URL}}})
	server.Require(t, err)
	defer st.Stop()
	ctx := context.Background()
	k, db := st.KinesisClient(), st.DynamoDBClient()
	const stream, app, bucket, prefix, devices = "telemetry", "e2e", "lake", "tapline", 250
	if err := stack.CreateStream(ctx, k, stream, 4); err != nil {
		t.Fatal(err)
	}
	store, err := st.S3Store(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rulesFile, []byte(consumertest.Rules), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(st.Env(),
		"TAPLINE_APP="+app, "TAPLINE_STREAM="+stream, "TAPLINE_S3_BUCKET="+bucket, "TAPLINE_S3_PREFIX="+prefix,
		"TAPLINE_SNS_TOPIC_ARN="+goaws.TopicARN("tapline-alerts"), "TAPLINE_RULES_FILE="+rulesFile,
		"TAPLINE_WINDOWS=1m,5m/1m", "TAPLINE_ALLOWED_LATENESS=30s",
		"TAPLINE_IDLE_TIMEOUT=10m", // no wall-clock cut: S3 must equal the oracle byte for byte
		"TAPLINE_BATCH_MAX_ROWS=4000", "TAPLINE_BATCH_FLUSH_EVERY=2m",
		"TAPLINE_KCL_SHARD_SYNC=300ms", "TAPLINE_KCL_FAILOVER_TIME=3s", "TAPLINE_KCL_IDLE_BETWEEN_READS=100ms",
		"TAPLINE_KCL_MAX_RECORDS=2000", "TAPLINE_SHUTDOWN_TIMEOUT=30s")

	first := consumertest.Telemetry(devices, 0, 200)
	if err := stack.Put(ctx, k, stream, first); err != nil {
		t.Fatal(err)
	}
	a := startProc(t, bin, "a", env)
	waitFor(t, "a ready", 30*time.Second, func() bool { c, _ := a.get("/readyz"); return c == 200 })
	var read float64
	waitFor(t, "a reads", 60*time.Second, func() bool { read = a.metric("tapline_records_total"); return read >= 20_000 })
	a.cmd.Process.Signal(syscall.SIGKILL) // a crash mid-stream
	<-a.done
	t.Logf("a killed after reading at least %v records", read)

	// Two workers share the stream.
	a2 := startProc(t, bin, "a2", env)
	b := startProc(t, bin, "b", env)
	second := append(consumertest.Telemetry(devices, 200, 402), consumertest.Heartbeat(devices)...)
	if err := stack.Put(ctx, k, stream, second); err != nil {
		t.Fatal(err)
	}
	var byOwner map[string]int
	waitFor(t, "all 4 shards owned by a2 and b", 30*time.Second, func() bool {
		owner, _ := leases(db, app)
		byOwner = map[string]int{}
		for _, o := range owner {
			byOwner[o]++
		}
		return byOwner["a2"]+byOwner["b"] == 4
	})
	t.Logf("shards per worker: %v", byOwner)
	waitFor(t, "b reads", 60*time.Second, func() bool { return b.metric("tapline_records_total") > 0 || byOwner["b"] == 0 })
	b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.done
	took := waitFor(t, "a2 takes b's shards", 30*time.Second, func() bool {
		owner, _ := leases(db, app)
		n := 0
		for _, o := range owner {
			if o == "a2" {
				n++
			}
		}
		return n == 4
	})
	t.Logf("a2 owned all 4 shards %v after b was killed (failover time 3s, shard sync 300ms)", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("failover took %v", took)
	}

	// The oracle, and the checkpoints where it acknowledged.
	windowSpecs := []windows.Spec{}
	for _, s := range []string{"1m", "5m/1m"} {
		sp, _ := windows.ParseSpec(s)
		windowSpecs = append(windowSpecs, sp)
	}
	rcfg, err := rules.Parse("rules.yml", []byte(consumertest.Rules))
	if err != nil {
		t.Fatal(err)
	}
	// The batches the workers cut to hand leases off (balancing) are
	// recorded: the oracle cuts at the same records.
	recorded, err := journal.Decisions(ctx, store, prefix, app)
	if err != nil {
		t.Fatal(err)
	}
	want, err := consumertest.Oracle(ctx, k, stream, prefix,
		pipeline.Options{Windows: windows.Options{Specs: windowSpecs, AllowedLateness: 30 * time.Second}, Rules: rcfg, MaxAhead: service.DefaultMaxAhead},
		batch.Options{MaxRows: 4000, FlushEvery: 2 * time.Minute}, recorded)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "checkpoints at the oracle's acknowledgements", 120*time.Second, func() bool {
		_, cp := leases(db, app)
		for id, seq := range want.Acked {
			if cp[id] != seq {
				return false
			}
		}
		return true
	})
	got := consumertest.Objects{}
	keys, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		if got[key], err = store.Get(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	data := got.Data(prefix)
	for _, key := range want.Objects.Keys() {
		if !bytes.Equal(data[key], want.Objects[key]) {
			t.Errorf("%s: missing or different from the oracle's", key)
		}
	}
	for _, key := range data.Keys() {
		if _, ok := want.Objects[key]; !ok {
			t.Errorf("%s: not written by the oracle", key)
		}
	}
	_, cp := leases(db, app)
	for id, seq := range cp {
		if _, ok := got[layout.StateDir(prefix, app, id, seq)+"base.snap"]; !ok {
			t.Errorf("checkpoint %s of %s has no stored state", seq, id)
		}
	}
	t.Logf("%d records, %d objects equal to the oracle's, checkpoints %v", len(first)+len(second), len(want.Objects), cp)

	// The expected alerts reached the subscriber: every oracle alert, and
	// among them a leak and a warm cooler for each faulty device.
	expected := map[string]bool{}
	for d := range devices {
		if consumertest.Leaks(d) {
			expected["leak "+consumertest.DeviceID(d)] = true
		}
		if consumertest.Warms(d) {
			expected["warm "+consumertest.DeviceID(d)] = true
		}
	}
	for _, al := range want.Alerts {
		if al.State == rules.Firing {
			delete(expected, al.Rule+" "+al.Device)
		}
	}
	if len(expected) > 0 {
		t.Errorf("the oracle misses injected anomalies: %v", expected)
	}
	var missing []string
	defer func() {
		if t.Failed() && len(missing) > 0 {
			t.Logf("alerts the subscriber did not get: %v", missing)
		}
	}()
	waitFor(t, "alerts at the SNS subscriber", 30*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		missing = missing[:0]
		for _, al := range want.Alerts {
			if sub.ids[al.ID] == 0 {
				missing = append(missing, fmt.Sprintf("%s %s %s %s at %s", al.State, al.Rule, al.Device, al.Metric, time.UnixMilli(al.At).UTC().Format(time.RFC3339)))
			}
		}
		return len(missing) == 0
	})
	sub.mu.Lock()
	var dup []string
	for id, n := range sub.ids {
		if n > 1 {
			dup = append(dup, id)
		}
	}
	sort.Strings(dup)
	t.Logf("%d alerts expected, %d distinct received, %d received more than once (replays after the kills: same id)", len(want.Alerts), len(sub.ids), len(dup))
	sub.mu.Unlock()

	// SIGTERM: the survivor cuts, checkpoints every shard at its last
	// record and exits 0.
	a2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a2.done:
		if a2.err != nil {
			t.Fatalf("a2 after SIGTERM: %v", a2.err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("a2 did not exit within 40 s of SIGTERM")
	}
	owner, cp := leases(db, app)
	last, err := consumertest.LastSequences(ctx, k, stream)
	if err != nil {
		t.Fatal(err)
	}
	for id := range want.Acked {
		if owner[id] != "" {
			t.Errorf("shard %s still leased to %s after shutdown", id, owner[id])
		}
		if cp[id] != last[id] {
			t.Errorf("shard %s: checkpoint after SIGTERM %s, want its last record %s", id, cp[id], last[id])
		}
	}
	if !strings.Contains(a2.logs(), `"msg":"stopped"`) {
		t.Errorf("a2 did not log its stop")
	}
}

// benchKinesalite measures records/s through `tapline run` on the local
// stack: 4 shards preloaded with 200,000 records (1,000 devices), then
// one service started; the clock runs from its first lease to the moment
// it has read every record. kinesalite serves GetRecords far slower than
// Kinesis (it is a Node.js process on the same two cores), so this
// bounds the local path, not tapline: see RESULTS.md.
func benchKinesalite(b *testing.B) {
	dir := b.TempDir()
	bin := binary(b, ".")
	st, err := stack.Start(stack.Options{Dir: dir})
	server.Require(b, err)
	defer st.Stop()
	ctx := context.Background()
	k := st.KinesisClient()
	for i := range b.N {
		stream := fmt.Sprintf("tp%d", i)
		if err := stack.CreateStream(ctx, k, stream, 4); err != nil {
			b.Fatal(err)
		}
		if _, err := st.S3Store(ctx, "lake"); err != nil {
			b.Fatal(err)
		}
		recs := consumertest.Telemetry(1000, 0, 200)
		if err := stack.Put(ctx, k, stream, recs); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		p := startProc(b, bin, "bench", append(st.Env(), "TAPLINE_APP="+stream, "TAPLINE_STREAM="+stream, "TAPLINE_S3_BUCKET=lake",
			"TAPLINE_KCL_SHARD_SYNC=200ms", "TAPLINE_KCL_IDLE_BETWEEN_READS=50ms", "TAPLINE_IDLE_TIMEOUT=10m"))
		waitFor(b, "ready", 30*time.Second, func() bool { c, _ := p.get("/readyz"); return c == 200 })
		began := time.Now()
		waitFor(b, "every record read", 10*time.Minute, func() bool { return p.metric("tapline_records_total") >= float64(len(recs)) })
		took := time.Since(began)
		b.StopTimer()
		b.ReportMetric(float64(len(recs))/took.Seconds(), "records/s")
		b.ReportMetric(p.metric("tapline_s3_puts_total"), "s3-puts")
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	}
}
