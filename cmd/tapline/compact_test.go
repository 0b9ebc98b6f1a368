package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapline/tapline/cmd/internal/demo"
	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/sinks/athena"
)

// analystAnswers are the queries the lake issue names, run in DuckDB
// through the views (the same SQL as Athena's): counts, sums, min and
// max per device and window; the raw rows per device (their sum rounded:
// a sum of doubles depends on the order rows are read in, which
// compaction changes); every alert row.
func analystAnswers(t *testing.T, root string) string {
	t.Helper()
	views, err := athena.DuckDB(root)
	if err != nil {
		t.Fatal(err)
	}
	res, err := duckdb.Query(views + `SELECT 'windows' AS q, count(*) AS n, string_agg(r, '|' ORDER BY r) AS rows FROM (
	  SELECT concat_ws(',', device_id, metric, window_spec, epoch_ms(window_start), "count", "sum", "min", "max") AS r FROM windows)
	UNION ALL SELECT 'raw', count(*), string_agg(r, '|' ORDER BY r) FROM (
	  SELECT concat_ws(',', device_id, count(*), round(sum(metrics['temp_c']), 6), min(ts), max(ts)) AS r FROM raw GROUP BY device_id)
	UNION ALL SELECT 'alerts', count(*), string_agg(r, '|' ORDER BY r) FROM (
	  SELECT concat_ws(',', alert_id, rule, device_id, state, epoch_ms("at"), "value", message) AS r FROM alerts)
	ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range res.Rows {
		fmt.Fprintf(&b, "%v %v: %v\n", r[0], r[1], r[2])
	}
	return b.String()
}

// TestCompactDemoDay compacts a day of the demo fleet's output with the
// tapline binary, killing it (SIGKILL) at growing delays first: after
// every kill the views answer as before compaction, and the last run
// finishes the job: one file per partition, no landing file left, the
// same answers.
func TestCompactDemoDay(t *testing.T) {
	server.Require(t, duckdb.Available())
	dir := t.TempDir()
	if _, err := demo.Run(context.Background(), demo.Options{Devices: 50, Duration: 24 * time.Hour, Seed: 1, OutDir: dir, Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	before := analystAnswers(t, dir)
	if !strings.Contains(before, "windows 565640:") || !strings.Contains(before, "alerts 9:") {
		t.Fatalf("the demo's day changed: %.300s", before)
	}
	bin := binary(t, ".")
	args := []string{"compact", "-dir", dir, "-before", "2100-01-01T00:00:00Z", "-delete-now"}
	for _, d := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, time.Second, 2 * time.Second} {
		cmd := exec.Command(bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if got := analystAnswers(t, dir); got != before {
			t.Fatalf("after a SIGKILL at %v (%d lines of progress) the answers differ: %s", d, strings.Count(out.String(), "\n"), firstDiff(got, before))
		}
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("last run: %s", lastLine(string(out)))
	if got := analystAnswers(t, dir); got != before {
		t.Fatal("compaction changed the answers")
	}
	status, err := exec.Command(bin, "compact", "-dir", dir, "-status").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, status)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(status)), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 5 && (f[2] != "0" || f[3] != "1" || f[4] != "1") {
			t.Errorf("after compaction: %s", line)
		}
	}
	t.Logf("status: %s", lastLine(string(status)))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// firstDiff shows where two answers first differ.
func firstDiff(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-300)
	return fmt.Sprintf("at byte %d: got …%s…, want …%s…", i, got[from:min(len(got), i+100)], want[from:min(len(want), i+100)])
}
