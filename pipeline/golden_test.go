package pipeline

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

var update = flag.Bool("update", false, "rewrite the expected output of golden files")

// base is event time 0:00 in golden files.
var base = time.Date(2024, 11, 27, 0, 0, 0, 0, time.UTC)

// TestGolden runs every testdata/*.txt file: a YAML header configuring the
// processor, a list of events, and the expected output. See
// testdata/README.md for the format. Run with -update to rewrite the
// expected output after a deliberate change, then review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(string(raw), "\n---\n", 3)
			if len(parts) < 2 {
				t.Fatalf("%s: want header, '---', events, '---', output", file)
			}
			got := runGolden(t, file, parts[0], parts[1], false, 0)
			if batched := runGolden(t, file, parts[0], parts[1], true, 0); batched != got {
				t.Errorf("%s: ProcessBatch output differs from Process:\n--- batch\n%s--- per record\n%s", file, batched, got)
			}
			// A shard that restarts from a snapshot must go on exactly
			// as if it had never stopped.
			for _, every := range []int{1, 2, 7} {
				// Counters are per process and start again at zero.
				if restarted := runGolden(t, file, parts[0], parts[1], false, every); noStats(restarted) != noStats(got) {
					t.Errorf("%s: output with a snapshot and restore every %d records differs:\n--- restarted\n%s--- straight\n%s", file, every, restarted, got)
				}
			}
			want := ""
			if len(parts) == 3 {
				want = parts[2]
			}
			if *update {
				out := parts[0] + "\n---\n" + parts[1] + "\n---\n" + got
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("%s: output differs (run go test ./pipeline -run TestGolden -update and review the diff)\n--- got\n%s--- want\n%s", file, got, want)
			}
		})
	}
}

type goldenHeader struct {
	Windows     []string         `yaml:"windows"`
	Lateness    time.Duration    `yaml:"lateness"`
	IdleTimeout time.Duration    `yaml:"idle_timeout"`
	SeriesTTL   time.Duration    `yaml:"series_ttl"`
	MaxBacklog  time.Duration    `yaml:"max_backlog"`
	Quantiles   bool             `yaml:"quantiles"`
	Skew        time.Duration    `yaml:"max_future_skew"`
	MaxAhead    time.Duration    `yaml:"max_ahead"`
	Rules       []map[string]any `yaml:"rules"`
	AlertsOnly  bool             `yaml:"alerts_only"` // no window lines: for long signals
}

type recorder struct{ lines []string }

func (r *recorder) Write(d *schemas.DeadLetter) error {
	r.lines = append(r.lines, fmt.Sprintf("dead %s seq=%s: %s", d.Reason, d.Sequence, d.Error))
	return nil
}

// runGolden replays the events, one Process call per record or, with
// batch, one ProcessBatch call per run of records between ticks. With
// restartEvery > 0, every that many records the processor is snapshot
// and replaced by a new one restored from the snapshot.
func runGolden(t *testing.T, file, header, events string, batch bool, restartEvery int) string {
	var h goldenHeader
	dec := yaml.NewDecoder(strings.NewReader(header))
	dec.KnownFields(true)
	if err := dec.Decode(&h); err != nil {
		t.Fatalf("%s: header: %v", file, err)
	}
	var specs []windows.Spec
	for _, s := range h.Windows {
		sp, err := windows.ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	var cfg *rules.Config
	if len(h.Rules) > 0 {
		doc, _ := yaml.Marshal(map[string]any{"rules": h.Rules})
		var err error
		if cfg, err = rules.Parse(file, doc); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{}
	opts := Options{
		Shard:       "shardId-000000000000",
		Decode:      schemas.Options{MaxFutureSkew: h.Skew},
		Windows:     windows.Options{Specs: specs, AllowedLateness: h.Lateness, IdleTimeout: h.IdleTimeout, SeriesTTL: h.SeriesTTL, MaxBacklog: h.MaxBacklog, Quantiles: h.Quantiles},
		Rules:       cfg,
		DeadLetters: rec,
		OnWindow: func(w *windows.Window) {
			if !h.AlertsOnly {
				rec.lines = append(rec.lines, fmtWindow(w, h.Quantiles))
			}
		},
		OnAlert:  func(a *rules.Alert) { rec.lines = append(rec.lines, fmtAlert(a)) },
		MaxAhead: h.MaxAhead,
	}
	p, err := NewProcessor(opts)
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p.Tick(wall)
	seq := 0
	var stateBase []byte // the restarts' last base
	var chain [][]byte   // and the changes since
	var since int
	var arrival int64
	pinned := false // arrival set by an arrive event, not by event times
	var pending []Input
	feed := func(data []byte, ts int64) {
		seq++
		if !pinned {
			arrival = max(arrival, ts)
		}
		if batch {
			pending = append(pending, Input{Data: data, Seq: strconv.Itoa(seq), Arrival: arrival})
			return
		}
		if err := p.Process(data, strconv.Itoa(seq), arrival); err != nil {
			t.Fatal(err)
		}
		if restartEvery > 0 && seq%restartEvery == 0 {
			// As the journal stores it: the changes since the snapshot
			// before, and a base now and then (every ninth restart:
			// BaseDue, whose age limit is a day, would take one at
			// almost every restart of these scripts, whose windows all
			// change), and restored from the base and every change
			// since; so a pane or rule state written without its
			// change showing restores stale here.
			whole := p.AppendSnapshot(nil)
			if since%9 == 0 {
				stateBase, chain = p.AppendBase(nil), nil
			}
			since++
			chain = append(chain, p.AppendSnapshotChanges(nil))
			next := p.AppendSnapshotChanges(nil) // the one after: the restored must write the same
			if p, err = NewProcessor(opts); err != nil {
				t.Fatal(err)
			}
			if err := p.RestoreParts(stateBase, chain); err != nil {
				t.Fatalf("%s: restore after record %d: %v", file, seq, err)
			}
			if again := p.AppendSnapshot(nil); string(again) != string(whole) {
				t.Fatalf("%s: the restored state snapshots differently after record %d", file, seq)
			}
			if again := p.AppendSnapshotChanges(nil); string(again) != string(next) {
				t.Fatalf("%s: the restored state's changes differ after record %d", file, seq)
			}
			chain = append(chain, next)
		}
		p.Tick(wall)
	}
	drain := func() {
		if len(pending) > 0 {
			if err := p.ProcessBatch(pending); err != nil {
				t.Fatal(err)
			}
			pending = pending[:0]
			p.Tick(wall)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(events))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 && !strings.HasPrefix(line, "raw ") {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		fail := func(format string, args ...any) {
			t.Fatalf("%s: events line %d: %s", file, n, fmt.Sprintf(format, args...))
		}
		switch f[0] {
		case "raw": // raw JSON, arriving at the current arrival time
			feed([]byte(strings.TrimSpace(strings.TrimPrefix(sc.Text(), "raw"))), arrival)
		case "arrive": // records from now on arrive at this time, whatever their event time
			if len(f) != 2 {
				fail("want: arrive TIME")
			}
			arrival, pinned = base.UnixMilli()+parseOffset(t, f[1]), true
		case "tick": // the wall clock moves on with no records
			drain()
			d, err := time.ParseDuration(f[1])
			if err != nil {
				fail("%v", err)
			}
			wall = wall.Add(d)
			rec.lines = append(rec.lines, "# tick "+f[1])
			p.Tick(wall)
		case "flush":
			drain()
			rec.lines = append(rec.lines, "# flush")
			p.Flush()
		case "every": // every STEP from T1 to T2 DEVICE[,DEVICE...] metric=v1,v2,...
			if len(f) < 8 || f[2] != "from" || f[4] != "to" {
				fail("want: every STEP from T1 to T2 DEVICE metric=v1,v2...")
			}
			step, err := time.ParseDuration(f[1])
			if err != nil {
				fail("%v", err)
			}
			from, to := parseOffset(t, f[3]), parseOffset(t, f[5])
			for i, ts := 0, from; ts <= to; i, ts = i+1, ts+step.Milliseconds() {
				for _, dev := range strings.Split(f[6], ",") {
					feed(record(t, dev, ts, f[7:], i), base.UnixMilli()+ts)
				}
			}
		default: // T DEVICE metric=v ...
			if len(f) < 3 {
				fail("want: TIME DEVICE metric=value...")
			}
			ts := parseOffset(t, f[0])
			feed(record(t, f[1], ts, f[2:], 0), base.UnixMilli()+ts)
		}
	}
	drain()
	st := p.Stats()
	rec.lines = append(rec.lines, fmt.Sprintf("# stats: records=%d accepted=%d in_order=%d out_of_order=%d late=%d windows=%d fired=%d resolved=%d evicted=%d live_series=%d",
		st.Records, st.Accepted, st.Windows.InOrder, st.Windows.OutOfOrder, st.Windows.Late, st.Windows.Windows, st.Fired, st.Resolved, st.Windows.Evicted, p.LiveSeries()))
	if st.Clamped > 0 {
		rec.lines[len(rec.lines)-1] += fmt.Sprintf(" clamped=%d", st.Clamped)
	}
	if st.Readings > 0 {
		rec.lines[len(rec.lines)-1] += fmt.Sprintf(" readings=%d", st.Readings)
	}
	if st.Windows.Duplicate > 0 {
		rec.lines[len(rec.lines)-1] += fmt.Sprintf(" duplicate=%d", st.Windows.Duplicate)
	}
	return strings.Join(rec.lines, "\n") + "\n"
}

// record builds the JSON of one record; a metric value list v1,v2,...
// is cycled through by i.
func record(t *testing.T, device string, ts int64, metrics []string, i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"device_id":%q,"ts":%d,"metrics":{`, device, base.UnixMilli()+ts)
	for k, m := range metrics {
		name, vals, ok := strings.Cut(m, "=")
		if !ok {
			t.Fatalf("metric %q: want name=value", m)
		}
		list := strings.Split(vals, ",")
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", name, list[i%len(list)])
	}
	b.WriteString("}}")
	return []byte(b.String())
}

// parseOffset reads M:SS or H:MM:SS (optionally .mmm) after base, in ms.
func parseOffset(t *testing.T, s string) int64 {
	parts := strings.Split(s, ":")
	var ms float64
	for _, p := range parts {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			t.Fatalf("time %q: %v", s, err)
		}
		ms = ms*60 + v
	}
	return int64(math.Round(ms * 1000))
}

func fmtOffset(ms int64) string {
	ms -= base.UnixMilli()
	neg := ""
	if ms < 0 {
		neg, ms = "-", -ms
	}
	s := fmt.Sprintf("%s%d:%02d:%02d", neg, ms/3600000, ms/60000%60, ms/1000%60)
	if ms%1000 != 0 {
		s += fmt.Sprintf(".%03d", ms%1000)
	}
	return s
}

func fmtWindow(w *windows.Window, quantiles bool) string {
	s := fmt.Sprintf("window %s [%s %s) %s %s n=%d sum=%.6g min=%.6g max=%.6g mean=%.6g sd=%.6g first=%.6g last=%.6g",
		w.Spec.Name, fmtOffset(w.Start), fmtOffset(w.End), w.DeviceID, w.Metric, w.Count, w.Sum, w.Min, w.Max, w.Mean, w.Stddev(), w.First, w.Last)
	if quantiles {
		s += fmt.Sprintf(" p50=%.3g p90=%.3g p99=%.3g", w.Quantile(0.5), w.Quantile(0.9), w.Quantile(0.99))
	}
	return s
}

func fmtAlert(a *rules.Alert) string {
	s := fmt.Sprintf("alert %s %s %s %s value=%.4g threshold=%.4g at=%s id=%s incident=%s | %s",
		a.State, a.Rule, a.Device, a.Metric, a.Value, a.Threshold, fmtOffset(a.At), a.ID, a.Incident, a.Message)
	if a.Repeat > 0 {
		s += fmt.Sprintf(" (repeat %d)", a.Repeat)
	}
	return s
}

func noStats(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "# stats") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
