package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tapline/tapline/deploy/local/faultproxy"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
)

// TestFaultLeaseBalancing: 8 shards held by one worker; two more start while
// records flow: the leases spread 3/3/2 by graceful handoffs (cut,
// checkpoint, release), then stay put; no record is lost, duplicated or
// read twice (the workers' record counts add up to the stream's); then
// two workers get SIGTERM and the last holds all 8. `make test-faults`
// watches the settled fleet for 10 minutes and repeats the whole ten
// times; `make test` once, watching 20 s.
func TestFaultLeaseBalancing(t *testing.T) {
	for rep := range pick(1, 10) {
		t.Run(fmt.Sprint(rep), func(t *testing.T) { balanceOnce(t) })
	}
}

func balanceOnce(t *testing.T) {
	e := newFaultEnv(t, 8)
	e.env = append(e.env, "TAPLINE_KCL_SHARD_SYNC=500ms")
	const devices = 200
	e.put(consumertest.Telemetry(devices, 0, 40))
	db := e.st.DynamoDBClient()
	held := func() map[string]int {
		owner, _ := leases(db, "faults")
		n := map[string]int{}
		for _, o := range owner {
			if o != "" {
				n[o]++
			}
		}
		return n
	}
	w1 := e.start("w1")
	waitFor(t, "w1 holding all 8 leases", 60*time.Second, func() bool { return held()["w1"] == 8 })

	began := time.Now()
	w2, w3 := e.start("w2"), e.start("w3")
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // records keep coming while the leases move
		defer wg.Done()
		for from := 40; from < 160; from += 10 {
			e.put(consumertest.Telemetry(devices, from, from+10))
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	balanced := func() bool {
		h := held()
		counts := []int{h["w1"], h["w2"], h["w3"]}
		sort.Ints(counts)
		return slices.Equal(counts, []int{2, 3, 3})
	}
	took := waitFor(t, "3/3/2", 60*time.Second, balanced)
	t.Logf("balanced 3/3/2 %v after two workers joined", took.Round(100*time.Millisecond))

	// Settled: count lease moves while it runs on.
	watch := pick(20*time.Second, 10*time.Minute)
	before, _ := leases(db, "faults")
	moves := 0
	for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		now, _ := leases(db, "faults")
		for id, o := range now {
			if o != "" && before[id] != "" && o != before[id] {
				moves++
			}
			if o != "" {
				before[id] = o
			}
		}
	}
	close(done)
	wg.Wait()
	if moves > 1 {
		t.Errorf("%d lease moves in %v once balanced, want at most 1", moves, watch)
	}
	e.put(consumertest.Heartbeat(devices))
	want := e.waitSettled(120 * time.Second)
	rep := e.verify(want)
	// Byte for byte: the oracle cut its batches where the handoffs did.
	lake, err := e.st.S3Store(context.Background(), "lake")
	if err != nil {
		t.Fatal(err)
	}
	for k, b := range want.Objects.Data("tapline") {
		if got, err := lake.Get(context.Background(), k); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s differs from the oracle's (%v)", k, err)
		}
	}
	var read float64
	for _, p := range []*proc{w1, w2, w3} {
		read += p.metric("tapline_records_total")
	}
	if stream := float64(devices*160 + devices); read != stream {
		t.Errorf("the workers read %v records of %v: %v read twice", read, stream, read-stream)
	}
	handoffs := w1.metric("tapline_lease_handoffs_total") + w2.metric("tapline_lease_handoffs_total") + w3.metric("tapline_lease_handoffs_total")
	// Settled, the shard syncs skip the reads of the others' leases.
	var skipped float64
	for _, p := range []*proc{w1, w2, w3} {
		skipped += p.metric("tapline_lease_reads_skipped_total")
	}
	if skipped == 0 {
		t.Error("no lease read skipped: every sync read every other worker's leases")
	}

	// Two leave: the last takes everything.
	w1.cmd.Process.Signal(syscall.SIGTERM)
	w2.cmd.Process.Signal(syscall.SIGTERM)
	<-w1.done
	<-w2.done
	stopped := time.Now()
	waitFor(t, "w3 holding all 8", 30*time.Second, func() bool {
		h := held()
		if time.Since(stopped) > 25*time.Second {
			owner, _ := leases(db, "faults")
			t.Logf("held %v; owners %v", h, owner)
		}
		return h["w3"] == 8
	})
	takeover := time.Since(stopped)
	if takeover > 10*time.Second {
		t.Errorf("w3 took all 8 leases %v after the others stopped, want 10 s", takeover)
	}
	t.Logf("RELIABILITY lease-balancing: 1 worker with 8 leases, 2 joined under load: 3/3/2 in %v by %v handoffs; %d moves in the next %v; %s; records read %v (none twice); %v lease reads skipped; SIGTERM to 2: the last held all 8 %v after they exited (%v since the first join)",
		took.Round(100*time.Millisecond), handoffs, moves, watch, rep, read, skipped, takeover.Round(100*time.Millisecond), time.Since(began).Round(time.Second))
	if !strings.Contains(w3.logs(), `"msg":"shard started"`) {
		t.Error("w3 started no shard")
	}
}

// Fault 15: a handoff interrupted. w1 holds 4 leases and w2 joins; at
// w1's first handoff, right after its release of the lease reached
// DynamoDB (its cut and checkpoint done), w1 is SIGKILLed, or frozen
// (SIGSTOP) for 8 s past the 3 s failover and then resumed. The others
// take its leases from their checkpoints: rows equal the oracle's, no
// checkpoint moves backwards, and a resumed w1 writes nothing.
func TestFaultHandoffInterrupted(t *testing.T) {
	for _, mode := range []string{"kill", "stop"} {
		t.Run(mode, func(t *testing.T) {
			e := newFaultEnv(t, 4)
			e.put(consumertest.Telemetry(200, 0, 60))
			var target atomic.Pointer[proc]
			var hit atomic.Int64
			resumed := make(chan struct{})
			e.dynamodb.SetRule(func(r *faultproxy.Request) faultproxy.Fault {
				p := target.Load()
				if p == nil || r.Op != "UpdateItem" || !strings.Contains(strings.ToLower(string(r.Body)), "remove assignedto") || hit.Add(1) != 1 {
					return faultproxy.Fault{}
				}
				return faultproxy.Fault{After: func() {
					if mode == "kill" {
						p.cmd.Process.Signal(syscall.SIGKILL)
						return
					}
					p.cmd.Process.Signal(syscall.SIGSTOP)
					time.AfterFunc(8*time.Second, func() { p.cmd.Process.Signal(syscall.SIGCONT); close(resumed) })
				}}
			})
			db := e.st.DynamoDBClient()
			w1 := e.start("w1")
			waitFor(t, "w1 holding all 4", 60*time.Second, func() bool {
				owner, _ := leases(db, "faults")
				n := 0
				for _, o := range owner {
					if o == "w1" {
						n++
					}
				}
				return n == 4
			})
			stopWatch := e.watchCheckpoints()
			target.Store(w1)
			w2 := e.start("w2")
			waitFor(t, "the handoff interrupted", 60*time.Second, func() bool { return hit.Load() >= 1 })
			e.put(append(consumertest.Telemetry(200, 60, 120), consumertest.Heartbeat(200)...))
			if mode == "kill" {
				<-w1.done
			}
			w3 := e.start("w3") // a third, so the leases have somewhere to go either way
			if mode == "stop" {
				<-resumed // w1 rejoins and takes a lease back: settled is after that
			}
			want := e.waitSettled(120 * time.Second)
			stopWatch() // fails the test if a checkpoint moved backwards
			rep := e.verify(want)
			t.Logf("RELIABILITY handoff-%s: w1 %s right after releasing a handed-off lease; %s; w2 read %v records, w3 %v; no checkpoint moved backwards",
				mode, map[string]string{"kill": "SIGKILLed", "stop": "frozen 8 s"}[mode], rep, w2.metric("tapline_records_total"), w3.metric("tapline_records_total"))
		})
	}
}
