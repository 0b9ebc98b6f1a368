package backtest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// nab reads the NAB series in testdata (MIT, testdata/nab-train/LICENSE.txt)
// and their labels.
func nab(t testing.TB) ([]Reading, Labels) {
	t.Helper()
	files, err := filepath.Glob("testdata/nab-train/*/*.csv")
	if err != nil || len(files) != 30 {
		t.Fatalf("%d NAB files: %v", len(files), err)
	}
	var all []Reading
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := ReadCSV(f, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rs...)
	}
	lf, err := os.Open("testdata/nab-train/windows.json")
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	labels, err := ReadLabels(lf)
	if err != nil {
		t.Fatal(err)
	}
	return all, labels
}

func zscoreOptions(t testing.TB, z, clear string, warmup string) pipeline.Options {
	t.Helper()
	spec, _ := windows.ParseSpec("1h")
	rs, err := rules.Parse("rules.yml", []byte(`
rules:
  - {name: value-z, kind: zscore, metric: value, window: 1h, aggregate: mean, z: `+z+`, clear_z: `+clear+`, warmup: `+warmup+`}
`))
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Options{Windows: windows.Options{Specs: []windows.Spec{spec}}, Rules: rs}
}

// TestNABZScoreBaseline replays the 30 labelled NAB series through the
// pipeline with a z-score rule on 1h means, at the two settings the
// detection issue quotes, and scores them as it defines. The figures are
// this replay's baseline, recorded so a change to detection moves them
// on purpose: 34 of 50 windows at 4.38 false alarms per series-week (z 4,
// clear 2, warm-up 24) and 23 of 50 at 2.89 (the demo's z 6, clear 3,
// warm-up 10), next to the 34 at 4.45 and 23 at 2.85 from a run
// whose exact rule settings it does not give; the series-weeks agree
// (73.4). (29 at 3.80 and 22 at 2.74 while a series that resumed after
// more than the series TTL, an hour, started its rules afresh: the
// sparse traffic series never finished a warm-up. Rule state now lives
// as long as its series, max_backlog.)
func TestNABZScoreBaseline(t *testing.T) {
	readings, labels := nab(t)
	if len(readings) != 107596 || len(labels) != 30 {
		t.Fatalf("%d readings, %d labelled series", len(readings), len(labels))
	}
	for _, tc := range []struct {
		z, clear, warmup   string
		detected, falseAls int
	}{
		{"4", "2", "24", 34, 322},
		{"6", "3", "10", 23, 212},
	} {
		res, err := Run(slicesClone(readings), zscoreOptions(t, tc.z, tc.clear, tc.warmup))
		if err != nil {
			t.Fatal(err)
		}
		s := ScoreAlerts(res, labels)
		var table bytes.Buffer
		s.WriteTable(&table)
		if s.Windows != 50 || s.Detected != tc.detected || s.FalseAlarms != tc.falseAls || fmt2(s.Weeks) != "73.44" {
			t.Errorf("z %s: %d of %d windows, %d false alarms over %.2f series-weeks (%.2f a week), want %d and %d\n%s",
				tc.z, s.Detected, s.Windows, s.FalseAlarms, s.Weeks, s.PerWeek(), tc.detected, tc.falseAls, table.String())
		}
		// 15 rows of the CSVs repeat an earlier row of their series (same
		// time, same value; e.g. 2014-03-09 03:00, a daylight-saving
		// change): dropped as duplicates.
		if res.Stats.Accepted != uint64(len(readings))-15 || res.Stats.Windows.Duplicate != 15 {
			t.Errorf("z %s: %d of %d readings accepted, %d duplicates: %+v", tc.z, res.Stats.Accepted, len(readings), res.Stats.Windows.Duplicate, res.Stats.Rejected)
		}
	}
}

// TestScoreAlerts: the scoring's definitions on a small case: a window
// counts once however many alerts fall in it, its ends included; RESOLVED
// alerts are not detections or false alarms; an unlabelled series' every
// FIRING is a false alarm.
func TestScoreAlerts(t *testing.T) {
	h := int64(3_600_000)
	res := &Result{
		Series: map[string]Span{"a": {0, 7 * 24 * h}, "b": {0, 14 * 24 * h}},
		Alerts: []rules.Alert{
			{Device: "a", State: rules.Firing, At: 10 * h},   // in a's first window, at its start
			{Device: "a", State: rules.Firing, At: 11 * h},   // the same window again
			{Device: "a", State: rules.Resolved, At: 50 * h}, // ignored
			{Device: "a", State: rules.Firing, At: 30 * h},   // between windows: false alarm
			{Device: "a", State: rules.Firing, At: 40 * h},   // second window, at its end
			{Device: "b", State: rules.Firing, At: 5 * h},    // unlabelled: false alarm
			{Device: "c", State: rules.Firing, At: 5 * h},    // no readings: not a series here
		},
	}
	labels := Labels{"a": {{10 * h, 20 * h}, {35 * h, 40 * h}, {60 * h, 70 * h}}}
	s := ScoreAlerts(res, labels)
	if s.Windows != 3 || s.Detected != 2 || s.FalseAlarms != 2 || s.Weeks != 3 || s.PerWeek() != 2.0/3 {
		t.Fatalf("score %+v", s)
	}
	if a := s.Series[0]; a.Device != "a" || a.Detected != 2 || a.FalseAlarms != 1 || a.Weeks != 1 {
		t.Fatalf("series a: %+v", a)
	}
}

// TestReadCSVErrors: a row that does not parse is an error naming the
// file and line, not a silently different replay.
func TestReadCSVErrors(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,NaNx\n", "f.csv:3: value"},
		{"timestamp,value\nyesterday,1\n", "f.csv:2: timestamp"},
		{"timestamp,value\n2014-04-01 00:00:00\n", "f.csv:2: 1 fields"},
	} {
		if _, err := ReadCSV("f.csv", strings.NewReader(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.data, err, tc.want)
		}
	}
	rs, err := ReadCSV("dir/my_pump.csv", strings.NewReader("timestamp,value,device\n2014-04-01T00:00:00Z,2.5,pump-7\n2014-04-01 00:01:00,3,\n"))
	if err != nil || len(rs) != 2 || rs[0].Device != "pump-7" || rs[1].Device != "my-pump" || rs[0].At != 1396310400000 || string(rs[0].Data) != `{"device_id":"pump-7","ts":1396310400000,"metrics":{"value":2.5}}` {
		t.Fatalf("%+v, %v", rs, err)
	}
}

// TestDeterministic: the same inputs give the same alerts, whatever order
// the files were read in.
func TestDeterministic(t *testing.T) {
	readings, labels := nab(t)
	a, _ := Run(slicesClone(readings), zscoreOptions(t, "4", "2", "24"))
	rev := slicesClone(readings)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	// Reversed input: ties in event time keep input order, so only
	// readings of distinct times may be compared across orders.
	b, _ := Run(rev, zscoreOptions(t, "4", "2", "24"))
	sa, sb := ScoreAlerts(a, labels), ScoreAlerts(b, labels)
	if sa.Detected != sb.Detected || sa.FalseAlarms != sb.FalseAlarms || len(a.Alerts) != len(b.Alerts) {
		t.Fatalf("forward %d/%d, reversed %d/%d", sa.Detected, sa.FalseAlarms, sb.Detected, sb.FalseAlarms)
	}
}

func slicesClone(r []Reading) []Reading { return append([]Reading(nil), r...) }

func fmt2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// TestRawParquetReplaysTheSameAlerts: the raw dataset tapline wrote for a
// stream replays to the same alerts as the records the devices sent (the
// question "what would these rules have said about last week?" asked of
// S3), and Parquet files of other datasets in the directory are skipped.
func TestRawParquetReplaysTheSameAlerts(t *testing.T) {
	var readings []Reading
	all, _ := nab(t)
	for _, r := range all { // two series, one with a window found, one with false alarms
		if r.Device == "ec2-cpu-utilization-24ae8d" || r.Device == "art-load-balancer-spikes" {
			readings = append(readings, r)
		}
	}
	dir := t.TempDir()
	var jsonl bytes.Buffer
	raw, err := parquet.NewRaw(parquet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dec := schemas.NewDecoder(schemas.Options{})
	for _, r := range readings {
		jsonl.Write(r.Data)
		jsonl.WriteByte('\n')
		rec, err := dec.Decode(r.Data, 0)
		if err != nil {
			t.Fatal(err)
		}
		raw.Append(rec, 0, "shardId-000000000000", "1")
	}
	data, err := raw.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "raw"), 0o755)
	os.WriteFile(filepath.Join(dir, "raw", "a.parquet"), data, 0o644)
	win, _ := parquet.NewWindows(parquet.Options{})
	hour, _ := windows.ParseSpec("1h")
	win.Append(&windows.Window{Spec: &hour, End: 3_600_000, DeviceID: "d", Metric: "value", Agg: windows.Agg{Count: 1, Sum: 1, Mean: 1, Min: 1, Max: 1}})
	wdata, err := win.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "windows"), 0o755)
	os.WriteFile(filepath.Join(dir, "windows", "w.parquet"), wdata, 0o644)
	jl := filepath.Join(t.TempDir(), "records.jsonl")
	os.WriteFile(jl, jsonl.Bytes(), 0o644)

	fromParquet, err := ReadPaths([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := ReadPaths([]string{jl})
	if err != nil {
		t.Fatal(err)
	}
	if len(fromParquet) != len(readings) || len(fromJSON) != len(readings) {
		t.Fatalf("%d readings from Parquet, %d from JSON lines, want %d", len(fromParquet), len(fromJSON), len(readings))
	}
	a, err := Run(fromParquet, zscoreOptions(t, "4", "2", "24"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(fromJSON, zscoreOptions(t, "4", "2", "24"))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(r *Result) []string {
		var s []string
		for _, al := range r.Alerts {
			s = append(s, al.ID+" "+strconv.FormatFloat(al.Value, 'g', -1, 64))
		}
		slices.Sort(s)
		return s
	}
	if len(a.Alerts) < 4 || !slices.Equal(ids(a), ids(b)) {
		t.Fatalf("Parquet %d alerts, JSON lines %d: %v vs %v", len(a.Alerts), len(b.Alerts), ids(a), ids(b))
	}
	if _, err := ReadPaths([]string{filepath.Join(dir, "windows", "w.parquet")}); !errors.Is(err, ErrNotRaw) {
		t.Fatalf("a windows file named as input: %v", err)
	}
}

// TestTimeOrder: both key forms give event-time order with ties in input
// order.
func TestTimeOrder(t *testing.T) {
	for _, spread := range []int64{1000, 1 << 50} { // packed keys, then pairs
		rs := make([]Reading, 5000)
		for i := range rs {
			rs[i].At = int64((i*7919)%13) * spread // many ties
		}
		order := timeOrder(rs)
		for i := 1; i < len(order); i++ {
			a, b := rs[order[i-1]], rs[order[i]]
			if a.At > b.At || a.At == b.At && order[i-1] > order[i] {
				t.Fatalf("spread %d: position %d out of order", spread, i)
			}
		}
	}
	if timeOrder([]Reading{{At: 1}, {At: 1}, {At: 2}}) != nil {
		t.Fatal("ordered input sorted")
	}
}
