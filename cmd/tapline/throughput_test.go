package main

import (
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapline/tapline/deploy/local/memkinesis"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/pipeline/consumer/consumertest"
)

// BenchmarkServiceThroughput measures `tapline run`, the whole process:
// against kinesalite (bounded by it), and against memkinesis, which
// serves GetRecords from answers encoded in memory, so the figure is
// tapline's own: GetRecords decoding, the KCL, the loop, Parquet, S3
// PUTs to versitygw and checkpoints to dynalite (those servers' CPU not
// counted). It reports wall records/s and the process's CPU-seconds per
// million records (utime + stime from /proc, from its first lease to its
// last record read). TAPLINE_PROFILE_OUT=file saves a CPU profile of the
// run for the breakdown in RESULTS.md.
//
//	go test -run '^$' -bench ServiceThroughput -benchtime 1x ./cmd/tapline
func BenchmarkServiceThroughput(b *testing.B) {
	b.Run("kinesalite", benchKinesalite)
	// 10,000 kegs every 10 s over 4 shards: 250 records a second of
	// event time a shard, the figure kept since session 9.
	b.Run("memory", func(b *testing.B) { benchMemory(b, 10_000, 100) })
	// 40,000 kegs every 10 s: 1,000 records a second a shard, a full
	// shard's rate, so a batch (a minute of event time a shard) is the
	// size a deployment near its shards' limit writes, and per-batch
	// work (three Parquet files, a state snapshot, four PUTs, a
	// checkpoint) a quarter of the above's share.
	b.Run("full-shards", func(b *testing.B) { benchMemory(b, 40_000, 25) })
}

// benchMemory runs devices reporting every 10 s for rounds reports.
func benchMemory(b *testing.B, devices, rounds int) {
	bin := binary(b, ".")
	st, err := stack.Start(stack.Options{Dir: b.TempDir()})
	server.Require(b, err)
	defer st.Stop()
	const shards = 4
	recs := consumertest.Telemetry(devices, 0, rounds)
	parts := make([][][]byte, shards)
	for _, r := range recs {
		h := fnv.New32a()
		h.Write([]byte(r.Key))
		parts[h.Sum32()%shards] = append(parts[h.Sum32()%shards], r.Data)
	}
	for i := range b.N {
		mem, err := memkinesis.Start("mem", parts, 10_000)
		if err != nil {
			b.Fatal(err)
		}
		app := fmt.Sprintf("mem%d", i)
		if _, err := st.S3Store(b.Context(), "lake"); err != nil {
			b.Fatal(err)
		}
		// pprof (and with it the heap profile's sampling, a few percent of
		// the process) only when a profile is asked for: the figure is the
		// production default's.
		pprofOn := strconv.FormatBool(os.Getenv("TAPLINE_PROFILE_OUT") != "")
		b.StartTimer()
		p := startProc(b, bin, "bench", append(st.Env(), "TAPLINE_ENDPOINTS_KINESIS="+mem.URL, "TAPLINE_APP="+app, "TAPLINE_STREAM=mem",
			"TAPLINE_S3_BUCKET=lake", "TAPLINE_PPROF="+pprofOn, "TAPLINE_KCL_SHARD_SYNC=200ms", "TAPLINE_KCL_IDLE_BETWEEN_READS=50ms",
			"TAPLINE_IDLE_TIMEOUT=10m"))
		waitFor(b, "every lease", 60*time.Second, func() bool { return p.metric("tapline_leases_taken_total") >= shards })
		cpu0, began := cpuSeconds(b, p), time.Now()
		profile := make(chan []byte, 1)
		if out := os.Getenv("TAPLINE_PROFILE_OUT"); out != "" {
			go func() {
				resp, err := http.Get("http://" + p.addr + "/debug/pprof/profile?seconds=4")
				if err != nil {
					profile <- nil
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				profile <- body
			}()
		} else {
			profile <- nil
		}
		// Within go test's default timeout, so a stall fails with the
		// process's log (startProc) instead of a panic that prints none.
		scrapes := waitForCount(b, "every record read", 4*time.Minute, float64(len(recs)), func() float64 { return p.metric("tapline_records_total") })
		took, cpu := time.Since(began), cpuSeconds(b, p)-cpu0
		b.StopTimer()
		if prof := <-profile; prof != nil {
			os.WriteFile(os.Getenv("TAPLINE_PROFILE_OUT"), prof, 0o644)
		}
		b.ReportMetric(float64(len(recs))/took.Seconds(), "records/s")
		b.ReportMetric(cpu/float64(len(recs))*1e6, "cpu-s/Mrecords")
		b.ReportMetric(float64(len(recs))/cpu, "records/cpu-s")
		b.ReportMetric(p.metric("tapline_getrecords_fast_total"), "fast-answers")
		b.ReportMetric(float64(scrapes), "scrapes")
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		mem.Stop()
	}
}

// waitForCount waits until read() reaches target and returns how often
// it read. Each read is a scrape of /metrics, whose text encoding and gzip
// cost the process about a millisecond of CPU: at waitFor's 20 a second
// that was 2-3% of the CPU the benchmark charges to the service, which in
// production is scraped every 15-60 s. So it reads as often as the rate
// so far says the end may be near: half the estimated time left, between
// 50 ms (the end is still seen within 50 ms) and a second.
func waitForCount(tb testing.TB, what string, timeout time.Duration, target float64, read func() float64) int {
	tb.Helper()
	began := time.Now()
	for n := 1; ; n++ {
		got := read()
		if got >= target {
			return n
		}
		took := time.Since(began)
		if took > timeout {
			tb.Fatalf("%s: %.0f of %.0f after %v", what, got, target, timeout)
		}
		wait := time.Second
		if got > 0 {
			wait = time.Duration(float64(took) * (target - got) / got / 2)
		}
		time.Sleep(min(max(wait, 50*time.Millisecond), time.Second))
	}
}

// cpuSeconds is a process's user and system CPU time so far.
func cpuSeconds(tb testing.TB, p *proc) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}
