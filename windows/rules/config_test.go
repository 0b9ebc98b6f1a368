package rules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapline/tapline/windows"
)

// TestFixtures parses testdata/*.good.yml (must load) and *.bad.yml (must
// fail with the error in the file's first line, "# error: ...").
func TestFixtures(t *testing.T) {
	good, _ := filepath.Glob("testdata/*.good.yml")
	bad, _ := filepath.Glob("testdata/*.bad.yml")
	if len(good) == 0 || len(bad) < 8 {
		t.Fatalf("fixtures missing: %d good, %d bad", len(good), len(bad))
	}
	for _, f := range good {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, f := range bad {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _ := bufio.NewReader(bytes.NewReader(data)).ReadString('\n')
		want, ok := strings.CutPrefix(strings.TrimSpace(first), "# error: ")
		if !ok {
			t.Fatalf("%s: first line must be '# error: ...'", f)
		}
		_, err = Parse(filepath.Base(f), data)
		if err == nil || err.Error() != want {
			t.Errorf("%s:\n got  %v\n want %s", f, err, want)
		}
	}
}

func TestEngineChecksWindowsAndQuantiles(t *testing.T) {
	cfg, err := Load("testdata/kegs.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	one, _ := windows.ParseSpec("1m")
	if _, err := NewEngine(cfg, []windows.Spec{one}, false, nil); err == nil || !strings.Contains(err.Error(), `no window spec named "5m/1m"`) {
		t.Fatalf("want an error naming the missing window, got %v", err)
	}
	odd, _ := Parse("r.yml", []byte("rules:\n  - {name: r, kind: threshold, metric: v, window: 1m, above: 1, routine: 90s}\n"))
	if _, err := NewEngine(odd, []windows.Spec{one}, false, nil); err == nil || !strings.Contains(err.Error(), `field "routine": must be a whole number of slides`) {
		t.Fatalf("want a routine error, got %v", err)
	}
	p99, _ := Parse("q.yml", []byte("rules:\n  - {name: q, kind: threshold, metric: v, window: 1m, aggregate: p99, above: 1}\n"))
	if _, err := NewEngine(p99, []windows.Spec{one}, false, nil); err == nil || !strings.Contains(err.Error(), "quantiles") {
		t.Fatalf("want a quantiles error, got %v", err)
	}
}

// FuzzParse: Parse never panics, and what it accepts is internally
// consistent.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, file := range files {
		data, _ := os.ReadFile(file)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yml", data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n") && !strings.Contains(err.Error(), "yaml:") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		names := map[string]bool{}
		for _, r := range cfg.Rules {
			if r.Routine != 0 && (r.Routine < time.Minute || r.Repeat > 0 || r.Kind == Missing) {
				t.Fatalf("inconsistent routine accepted: %+v", r)
			}
			if !nameRE.MatchString(r.Name) || names[r.Name] {
				t.Fatalf("bad or duplicate name %q", r.Name)
			}
			names[r.Name] = true
			switch r.Kind {
			case Missing:
				if r.After <= 0 {
					t.Fatalf("missing rule without duration: %+v", r)
				}
			case Threshold, Rate:
				if r.Above == nil && r.Below == nil || r.M < 1 || r.M > r.N || r.N > 64 || r.Window == "" {
					t.Fatalf("inconsistent rule accepted: %+v", r)
				}
			case ZScore, Robust, Seasonal, CUSUM, Forest:
				if !(r.Z > 0) || !(r.ClearZ > 0) || r.ClearZ > r.Z || !(r.Alpha > 0 && r.Alpha <= 1) || !(r.Gamma > 0 && r.Gamma <= 1) {
					t.Fatalf("inconsistent %s rule accepted: %+v", r.Kind, r)
				}
				if r.History < 3 || r.History > 1024 || r.Novelty < 0 || !slices.Contains([]string{"median", "range", "below", "above"}, r.From) || r.Kind == CUSUM && !(r.Drift >= 0 && r.Drift < r.Z) {
					t.Fatalf("inconsistent %s options accepted: %+v", r.Kind, r)
				}
				if r.Kind == Forest && (r.Shingle < 1 || r.Trees < 1 || r.Sample < 8 || max(1, len(r.Metrics))*r.Shingle > maxForestDims || (r.Metric == "") == (len(r.Metrics) == 0)) {
					t.Fatalf("inconsistent forest accepted: %+v", r)
				}
				if r.Kind != Seasonal && r.Warmup < 2 || r.Kind == Robust && r.Warmup > r.History || r.Kind == Seasonal && r.Season < time.Minute {
					t.Fatalf("inconsistent %s warm-up accepted: %+v", r.Kind, r)
				}
			case Stuck:
				if r.History < 1 || r.History > 100000 || r.Aggregate != "last" || r.Window == "" || r.Metric == "" {
					t.Fatalf("inconsistent stuck rule accepted: %+v", r)
				}
			default:
				t.Fatalf("unknown kind accepted: %+v", r)
			}
		}
	})
}

// TestZScoreOffAFlatBaselineIsFinite: a window off a perfectly flat
// baseline fires with a finite value, so its alert can be written as JSON
// (an infinite one made SNS publishing and dead-lettering both fail).
func TestZScoreOffAFlatBaselineIsFinite(t *testing.T) {
	cfg, err := Parse("rules.yml", []byte("rules:\n  - {name: z, kind: zscore, metric: v, window: 1m, z: 4, warmup: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	one, _ := windows.ParseSpec("1m")
	var got []Alert
	e, err := NewEngine(cfg, []windows.Spec{one}, false, func(a *Alert) { got = append(got, *a) })
	if err != nil {
		t.Fatal(err)
	}
	for i, mean := range []float64{10, 10, 10, 10, 50} {
		w := &windows.Window{Spec: &one, Start: int64(i) * 60_000, End: int64(i+1) * 60_000, DeviceID: "d", Metric: "v",
			Series: windows.Handle(1), Device: windows.Handle(2)}
		w.Agg = windows.Agg{Count: 1, Sum: mean, Min: mean, Max: mean, Mean: mean}
		e.Window(w)
	}
	if len(got) != 1 || got[0].State != Firing || math.IsInf(got[0].Value, 0) || got[0].Value != math.MaxFloat64 {
		t.Fatalf("alerts %+v", got)
	}
	if _, err := json.Marshal(got[0].AlertMessage()); err != nil {
		t.Fatal(err)
	}
}

// TestAnnotations: an alert carries its rule's summary and runbook URL
// filled in and its labels; editing them does not change what the rule
// decides (its definition, which keys its state).
func TestAnnotations(t *testing.T) {
	cfg, err := Load("testdata/detectors.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Rule("annotated")
	one, _ := windows.ParseSpec("1h")
	var got []Alert
	e, err := NewEngine(&Config{Rules: []*Rule{r}}, []windows.Spec{one}, false, func(a *Alert) { got = append(got, *a) })
	if err != nil {
		t.Fatal(err)
	}
	w := &windows.Window{Spec: &one, Start: 0, End: 3_600_000, DeviceID: "cooler-7", Metric: "temp", Series: windows.Handle(1), Device: windows.Handle(2)}
	w.Agg = windows.Agg{Count: 1, Sum: 9.5, Min: 9.5, Max: 9.5, Mean: 9.5}
	e.Window(w)
	if len(got) != 1 || got[0].Summary != "cooler-7 temp at 9.5 (limit 8)" ||
		got[0].RunbookURL != "https://runbooks.example.com/cooler?device=cooler-7" || got[0].Labels["team"] != "cellar" {
		t.Fatalf("alert %+v", got)
	}
	msg := got[0].AlertMessage()
	if err := msg.Validate(); err != nil {
		t.Fatal(err)
	}
	edited := *r
	edited.Summary, edited.RunbookURL, edited.Labels, edited.Severity = "other", "", nil, "critical"
	if edited.definition() != r.definition() {
		t.Fatal("annotations, labels or severity changed the rule's definition")
	}
	edited.Above = new(float64)
	if edited.definition() == r.definition() {
		t.Fatal("a new level did not change the definition")
	}
}
