// Package rulestest runs unit tests of rules files, as promtool test rules
// does for Prometheus: each test gives input series (values at a fixed
// interval) and the alerts expected, and runs them through the service's
// own pipeline (decoder, windows, rules). `tapline rules test FILE...`
// and `make test` run the tests shipped beside the rule files.
//
// A test file:
//
//	rules: rules.yml         # relative to this file, or "default" (the embedded set)
//	windows: [1m]            # optional: default, the windows the rules read
//	tests:
//	  - name: a leak fires after two windows
//	    interval: 1m         # optional, default 1m
//	    input:
//	      - device: keg-1
//	        metrics:
//	          flow_lpm: "0x3 0.2x4 0x5"   # one value per interval; vxN repeats v N times; _ skips
//	          temp_c: "4+0.1x10"          # a+bxN: a, a+b, ..., N+1 values
//	    expect:
//	      - {at: 6m, state: FIRING, rule: keg-leak, device: keg-1}
//	      - {at: 9m, state: RESOLVED, rule: keg-leak, device: keg-1}
//
// Readings start at 2024-01-01T00:00:00Z; "at" is the alert's event time
// as an offset from it. The input ends one interval after its last step:
// the windows that end by then close (longer ones stay open). A test
// passes when the alerts raised are exactly the expected ones, compared
// by time, state, rule, device and, where given, metric.
package rulestest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// Start is the event time of every test's first reading.
var Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// File is a parsed test file.
type File struct {
	Rules   string   `yaml:"rules"`
	Windows []string `yaml:"windows"`
	Tests   []Test   `yaml:"tests"`
}

// Test is one case.
type Test struct {
	Name     string        `yaml:"name"`
	Interval time.Duration `yaml:"interval"`
	Input    []Series      `yaml:"input"`
	Expect   []Expected    `yaml:"expect"`
}

// Series is one device's readings.
type Series struct {
	Device  string            `yaml:"device"`
	Metrics map[string]string `yaml:"metrics"`
}

// Expected is one alert.
type Expected struct {
	At     time.Duration `yaml:"at"`
	State  string        `yaml:"state"`
	Rule   string        `yaml:"rule"`
	Device string        `yaml:"device"`
	Metric string        `yaml:"metric"`
}

func (x Expected) String() string {
	s := fmt.Sprintf("%v %s %s %s", x.At, x.State, x.Rule, x.Device)
	if x.Metric != "" {
		s += " " + x.Metric
	}
	return s
}

// Result is one test's outcome: Failure is empty when it passed.
type Result struct {
	File, Name string
	Failure    string
}

// RunFile runs every test of a test file.
func RunFile(path string) ([]Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Rules == "" || len(f.Tests) == 0 {
		return nil, fmt.Errorf("%s: want rules and at least one test", path)
	}
	rulesFile := f.Rules
	if rulesFile != rules.DefaultFile {
		rulesFile = filepath.Join(filepath.Dir(path), f.Rules)
	}
	cfg, err := rules.LoadOrDefault(rulesFile)
	if err != nil {
		return nil, err
	}
	specs, err := specsFor(cfg, f.Windows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Result
	for i, t := range f.Tests {
		name := t.Name
		if name == "" {
			name = "test " + strconv.Itoa(i+1)
		}
		failure, err := run(cfg, specs, t)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		out = append(out, Result{File: path, Name: name, Failure: failure})
	}
	return out, nil
}

// specsFor parses the test file's windows, or takes those the rules read.
func specsFor(cfg *rules.Config, names []string) ([]windows.Spec, error) {
	if len(names) == 0 {
		return cfg.Specs()
	}
	specs := make([]windows.Spec, len(names))
	for i, n := range names {
		var err error
		if specs[i], err = windows.ParseSpec(n); err != nil {
			return nil, err
		}
	}
	return specs, nil
}

type nowhere struct{}

func (nowhere) Write(*schemas.DeadLetter) error { return nil }

// run replays one test; the string is its failure, empty if it passed.
func run(cfg *rules.Config, specs []windows.Spec, t Test) (string, error) {
	interval := t.Interval
	if interval == 0 {
		interval = time.Minute
	}
	if interval < time.Millisecond {
		return "", fmt.Errorf("interval %v is under a millisecond", interval)
	}
	// One record per device and step, holding the metrics with a value.
	type step map[string]float64
	var devices []string
	steps := map[string][]step{}
	n := 0
	for _, s := range t.Input {
		if !schemas.ValidDeviceID(s.Device) {
			return "", fmt.Errorf("device %q is not a device id", s.Device)
		}
		if _, dup := steps[s.Device]; !dup {
			devices = append(devices, s.Device)
		}
		names := make([]string, 0, len(s.Metrics))
		for m := range s.Metrics {
			names = append(names, m)
		}
		slices.Sort(names)
		for _, m := range names {
			vals, err := ExpandValues(s.Metrics[m])
			if err != nil {
				return "", fmt.Errorf("%s %s: %w", s.Device, m, err)
			}
			for len(steps[s.Device]) < len(vals) {
				steps[s.Device] = append(steps[s.Device], step{})
			}
			for i, v := range vals {
				if v != nil {
					steps[s.Device][i][m] = *v
				}
			}
			n = max(n, len(vals))
		}
	}
	var got []Expected
	p, err := pipeline.NewProcessor(pipeline.Options{
		Shard: "rules-test", Windows: windows.Options{Specs: specs}, Rules: cfg, DeadLetters: nowhere{},
		OnAlert: func(a *rules.Alert) {
			got = append(got, Expected{At: time.Duration(a.At-Start.UnixMilli()) * time.Millisecond, State: string(a.State), Rule: a.Rule, Device: a.Device, Metric: a.Metric})
		},
	})
	if err != nil {
		return "", err
	}
	var rec []byte
	for i := range n {
		at := Start.Add(time.Duration(i) * interval).UnixMilli()
		for _, d := range devices {
			if i >= len(steps[d]) || len(steps[d][i]) == 0 {
				continue
			}
			rec = fmt.Appendf(rec[:0], `{"device_id":%q,"ts":%d,"metrics":{`, d, at)
			names := make([]string, 0, len(steps[d][i]))
			for m := range steps[d][i] {
				names = append(names, m)
			}
			slices.Sort(names)
			for k, m := range names {
				if k > 0 {
					rec = append(rec, ',')
				}
				rec = strconv.AppendQuote(rec, m)
				rec = append(rec, ':')
				rec = strconv.AppendFloat(rec, steps[d][i][m], 'g', -1, 64)
			}
			rec = append(rec, "}}"...)
			if err := p.Process(rec, "", 0); err != nil {
				return "", err
			}
		}
	}
	if st := p.Stats(); st.Accepted != st.Records {
		return "", fmt.Errorf("%d of %d readings rejected: %v", st.Records-st.Accepted, st.Records, st.Rejected)
	}
	// The input ends one interval after its last step: windows that end by
	// then close, as every device's clock had got there; longer ones stay
	// open, and a missing-data rule sees one interval of silence, not the
	// end of the input.
	p.CloseThrough(Start.Add(time.Duration(n) * interval).UnixMilli())
	return diff(t.Expect, got), nil
}

// diff lists the expected alerts that did not come and the alerts that
// were not expected, one a line; empty when they agree.
func diff(want, got []Expected) string {
	match := func(w, g Expected) bool {
		return w.At == g.At && strings.EqualFold(w.State, g.State) && w.Rule == g.Rule && w.Device == g.Device && (w.Metric == "" || w.Metric == g.Metric)
	}
	used := make([]bool, len(got))
	var b strings.Builder
	for _, w := range want {
		found := false
		for i, g := range got {
			if !used[i] && match(w, g) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			fmt.Fprintf(&b, "  missing:    %v\n", w)
		}
	}
	for i, g := range got {
		if !used[i] {
			fmt.Fprintf(&b, "  unexpected: %v\n", g)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	b.WriteString("  raised:\n")
	for _, g := range got {
		fmt.Fprintf(&b, "    %v\n", g)
	}
	return b.String()
}

// group is a parenthesised list repeated: "(1 2 3)x4".
var group = regexp.MustCompile(`\(([^()]*)\)x([0-9]+)`)

// ExpandValues reads a value list: space-separated numbers, "_" for no
// reading, "vxN" for v repeated N times, "a+bxN" (or "a-bxN") for
// a, a+b, ..., a+N·b (N+1 values, as promtool writes series), and
// "(...)xN" for a list repeated N times (a daily cycle: 24 values x days;
// groups nest, the innermost expanded first).
func ExpandValues(s string) ([]*float64, error) {
	var err error
	for err == nil && group.MatchString(s) {
		s = group.ReplaceAllStringFunc(s, func(g string) string {
			m := group.FindStringSubmatch(g)
			n, _ := strconv.Atoi(m[2])
			if n < 1 || n*len(m[1]) > 10<<20 {
				err = fmt.Errorf("%q: the count after x must be at least 1, and the list under 10 MB", g)
				return ""
			}
			return strings.Repeat(m[1]+" ", n)
		})
		if len(s) > 10<<20 {
			err = fmt.Errorf("the values expand to over 10 MB")
		}
	}
	if err != nil {
		return nil, err
	}
	var out []*float64
	for _, f := range strings.Fields(s) {
		if f == "_" {
			out = append(out, nil)
			continue
		}
		base, count, repeat := strings.Cut(f, "x")
		if !repeat {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return nil, fmt.Errorf("value %q is not a number", f)
			}
			out = append(out, &v)
			continue
		}
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 || n > 100_000 {
			return nil, fmt.Errorf("%q: the count after x must be 1..100000", f)
		}
		// a+b or a-b (the sign after the first character), or a plain value.
		start, stepStr, op := base, "", byte(0)
		for i := 1; i < len(base); i++ {
			if (base[i] == '+' || base[i] == '-') && base[i-1] != 'e' && base[i-1] != 'E' {
				start, stepStr, op = base[:i], base[i+1:], base[i]
				break
			}
		}
		a, err := strconv.ParseFloat(start, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %q is not a number", f, start)
		}
		if op == 0 {
			for range n {
				v := a
				out = append(out, &v)
			}
			continue
		}
		step, err := strconv.ParseFloat(stepStr, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: step %q is not a number", f, stepStr)
		}
		if op == '-' {
			step = -step
		}
		for k := range n + 1 {
			v := a + float64(k)*step
			out = append(out, &v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no values")
	}
	return out, nil
}
