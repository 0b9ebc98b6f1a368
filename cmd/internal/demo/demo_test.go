package demo

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
)

func run(t *testing.T, dir string) *Summary {
	t.Helper()
	sum, err := Run(context.Background(), Options{Devices: 50, Duration: 2 * time.Hour, Seed: 1, OutDir: dir, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestDemoCatchesEveryFault runs the default demo unpaced and checks that
// each injected fault raises its alert on the right keg, and nothing else
// fires.
func TestDemoCatchesEveryFault(t *testing.T) {
	sum := run(t, t.TempDir())
	want := []string{
		"FIRING   critical keg-leak          keg-0007",
		"RESOLVED critical keg-leak          keg-0007", // the valve closed
		"FIRING   critical keg-offline       keg-0021",
		"FIRING   warning  gas-pressure-drop keg-0031",
		"RESOLVED warning  gas-pressure-drop keg-0031",
		"FIRING   warning  cooler-failure    keg-0013",
		"FIRING   info     temp-anomaly      keg-0041",
		"RESOLVED warning  cooler-failure    keg-0013", // the cooler boosted
		"FIRING   warning  probe-stuck       keg-0046",
	}
	var got []string
	for _, a := range sum.Alerts {
		got = append(got, strings.Join(strings.Fields(a)[1:5], " "))
	}
	for i := range want {
		want[i] = strings.Join(strings.Fields(want[i]), " ")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("alerts:\n%s\nwant (in order):\n%s", strings.Join(sum.Alerts, "\n"), strings.Join(want, "\n"))
	}
	// The loop closes: the policy's commands reach the kegs, which act.
	story := strings.Join(sum.Story, "\n")
	for _, want := range []string{"keg-0007: keg-leak detected -> close_valve", "keg-0007: keg-leak resolved after close_valve",
		"keg-0013: cooler-failure detected -> boost_cooler", "keg-0013: cooler-failure resolved after boost_cooler"} {
		if !strings.Contains(story, want) {
			t.Errorf("story lacks %q:\n%s", want, story)
		}
	}
	if sum.Commands != 2 {
		t.Errorf("kegs applied %d commands, want 2", sum.Commands)
	}
	if sum.Accepted == 0 || sum.Rejected["malformed_json"] == 0 || sum.Rejected["late"] == 0 {
		t.Fatalf("want aggregated, malformed and late records: %+v", sum)
	}
}

// TestDemoDeterministic: same seed, same records, windows, alerts and dead
// letters.
func TestDemoDeterministic(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	a, b := run(t, d1), run(t, d2)
	if !slices.Equal(a.Alerts, b.Alerts) || a.Windows != b.Windows || a.Accepted != b.Accepted {
		t.Fatal("two runs with the same seed differ")
	}
	p1, _ := filepath.Glob(filepath.Join(d1, "*", "dt=*", "hour=*", "*.parquet"))
	p2, _ := filepath.Glob(filepath.Join(d2, "*", "dt=*", "hour=*", "*.parquet"))
	if len(p1) == 0 || len(p1) != len(p2) {
		t.Fatalf("runs wrote %d and %d Parquet files", len(p1), len(p2))
	}
	for i := range p1 {
		r1, _ := filepath.Rel(d1, p1[i])
		r2, _ := filepath.Rel(d2, p2[i])
		b1, _ := os.ReadFile(p1[i])
		b2, _ := os.ReadFile(p2[i])
		if r1 != r2 || string(b1) != string(b2) {
			t.Fatalf("Parquet differs between runs: %s vs %s", r1, r2)
		}
	}
	f1, _ := os.ReadFile(filepath.Join(d1, "deadletter", "demo.jsonl"))
	f2, _ := os.ReadFile(filepath.Join(d2, "deadletter", "demo.jsonl"))
	if string(f1) != string(f2) {
		t.Fatal("dead letters differ between runs")
	}
	var total uint64
	for _, n := range a.Rejected {
		total += n
	}
	lines := 0
	for sc := bufio.NewScanner(strings.NewReader(string(f1))); sc.Scan(); {
		lines++
	}
	if uint64(lines) != total {
		t.Fatalf("%d dead-letter lines, %d rejected records", lines, total)
	}
}

// TestDemoParquet: the windows in the Parquet files are exactly the
// windows the processor closed, and a rerun with the same seed finds every
// file already written, with the same bytes.
func TestDemoParquet(t *testing.T) {
	dir := t.TempDir()
	sum := run(t, dir)
	paths, _ := filepath.Glob(filepath.Join(dir, "windows", "dt=*", "hour=*", "demo-*.parquet"))
	if len(paths) == 0 || sum.Files == 0 {
		t.Fatalf("no window files (%d written)", sum.Files)
	}
	var rows int64
	before := map[string][]byte{}
	all, _ := filepath.Glob(filepath.Join(dir, "*", "dt=*", "hour=*", "*.parquet"))
	for _, p := range all {
		before[p], _ = os.ReadFile(p)
	}
	for _, p := range paths {
		r, err := file.OpenParquetFile(p, false)
		if err != nil {
			t.Fatal(err)
		}
		rows += r.NumRows()
		r.Close()
	}
	if rows != int64(sum.Windows) {
		t.Fatalf("%d window rows in Parquet, %d windows closed", rows, sum.Windows)
	}
	again := run(t, dir)
	if again.Files != 0 || again.FilesExisting != len(all) {
		t.Fatalf("rerun wrote %d files, found %d of %d", again.Files, again.FilesExisting, len(all))
	}
	for _, p := range all {
		if b, _ := os.ReadFile(p); string(b) != string(before[p]) {
			t.Fatalf("%s changed on rerun", p)
		}
	}
	if !strings.Contains(sum.Query, QuerySQL(dir)) {
		t.Fatalf("printed query %s", sum.Query)
	}
	// The query the demo prints runs in DuckDB, the Athena stand-in.
	server.Require(t, duckdb.Available())
	res, err := duckdb.Query(QuerySQL(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 12 || res.Rows[0][0] != "keg-0001" {
		t.Fatalf("DuckDB answered %v", res.Rows)
	}
}
