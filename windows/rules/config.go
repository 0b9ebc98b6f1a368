package rules

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
)

// Kind is the kind of a rule.
type Kind uint8

// Rule kinds.
const (
	Threshold Kind = iota + 1
	ZScore
	Rate
	Missing
	Robust
	Seasonal
	CUSUM
	Forest
	Stuck
)

var kindNames = map[string]Kind{
	"threshold": Threshold, "zscore": ZScore, "rate": Rate, "missing": Missing,
	"robust": Robust, "seasonal": Seasonal, "cusum": CUSUM, "forest": Forest, "stuck": Stuck,
}

// scored reports whether the kind fires on a score compared with z.
func (k Kind) scored() bool {
	return k == ZScore || k == Robust || k == Seasonal || k == CUSUM || k == Forest
}

// detected reports whether the kind's state is a detect.Detector.
func (k Kind) detected() bool {
	return k == Robust || k == Seasonal || k == CUSUM || k == Forest || k == Stuck
}

// kindFields are the fields each kind reads beyond name, kind, severity,
// devices, metric, window, aggregate, for, m_of_n and keep_firing_for.
var kindFields = map[Kind][]string{
	Threshold: {"above", "below", "clear"},
	Rate:      {"above", "below", "clear", "per"},
	ZScore:    {"z", "clear_z", "alpha", "warmup"},
	Robust:    {"z", "clear_z", "warmup", "history", "from", "novelty", "novelty_warmup", "novelty_rise"},
	Seasonal:  {"z", "clear_z", "alpha", "gamma", "warmup", "season", "novelty", "novelty_warmup", "novelty_rise"},
	CUSUM:     {"z", "clear_z", "alpha", "warmup", "drift", "novelty", "novelty_warmup", "novelty_rise"},
	Forest:    {"z", "clear_z", "alpha", "warmup", "novelty", "novelty_warmup", "novelty_rise", "shingle", "trees", "sample", "metrics"},
	Missing:   {"after"},
	Stuck:     {"history"},
}

// optionFields are every kind-specific field, in the order errors name them.
var optionFields = []string{"above", "below", "clear", "per", "z", "clear_z", "alpha", "gamma", "warmup", "history", "from", "season", "drift", "novelty", "novelty_warmup", "novelty_rise", "shingle", "trees", "sample", "metrics", "after"}

func (k Kind) String() string {
	for n, v := range kindNames {
		if v == k {
			return n
		}
	}
	return "unknown"
}

// Aggregates a rule can test.
var aggregates = []string{"count", "sum", "min", "max", "mean", "stddev", "first", "last", "p50", "p90", "p99", "duration"}

// Rule is one validated rule. Pointers are nil when the field was not set.
type Rule struct {
	Name      string
	Kind      Kind
	Severity  string // info, warning or critical
	Devices   string // glob on the device id (path.Match), "*" by default
	Metric    string // glob on the metric name; empty for a device-level missing rule
	Window    string // window spec name the rule reads (not for missing)
	Aggregate string // one of count, sum, min, max, mean, stddev, first, last, p50, p90, p99, duration (seconds, first to last record); last for stuck, which reads min and max

	Above, Below  *float64 // threshold and rate
	Clear         *float64 // hysteresis level; defaults to the threshold
	M, N          int      // fire when M of the last N windows are bad (for: N means N of N)
	KeepFiringFor int      // windows a firing alert stays after the condition clears
	// Repeat, if set, notifies again (FIRING, the same incident, Repeat
	// counting) each time an alert has been firing this much longer, in
	// event time: repeat_interval. A notification setting, like
	// severity: changing it keeps the rule's state.
	Repeat time.Duration
	// Routine, if set, keeps quiet an alert that recurs with the period:
	// a FIRING whose window ends a whole number of periods after the
	// rule's last FIRING on the series is routine, a rhythm and not an
	// incident (a daily rule on a signal with a weekly one fires every
	// weekend at the same hour), and is kept as SUPPRESSED, not
	// notified. The first of them is notified: it cannot be known to
	// recur. Exact: window ends are multiples of the slide, which the
	// period must be a multiple of. A notification setting, like Repeat.
	Routine time.Duration

	Z, ClearZ float64       // scored kinds: fire above |score| > Z, clear below ClearZ
	Alpha     float64       // zscore, seasonal, cusum: weight of a new window in the baseline
	Gamma     float64       // seasonal: weight of a new cycle in a position's offset
	Warmup    int           // scored kinds: windows learnt before evaluating
	History   int           // robust: windows in the median's history; stuck: varied windows in a row before a flat one is stuck
	Season    time.Duration // seasonal: the cycle (24h daily, 168h weekly)
	Drift     float64       // cusum: allowance k in standard deviations
	From      string        // robust: "median" (distance from it), "range" (beyond min/max), "below" (min) or "above" (max)
	Novelty   int           // robust, seasonal, cusum, forest: half-life in windows of the peak a score must beat; 0 off
	// NoveltyWarmup is how many scored windows the novelty peak learns
	// from before any score passes: a fresh peak of 0 lets a series'
	// first scores through whole, and a new device's first day after
	// warmup raised half of the default set's false alarms on NAB
	// (benchmarks/DETECTION.md). 0: none; needs novelty.
	NoveltyWarmup int
	// NoveltyRise bounds how fast the novelty peak climbs once learnt: by
	// at most this factor a window, so an anomaly's own score does not
	// hide the next one for days (detect.Novel). 0: unlimited; needs
	// novelty.
	NoveltyRise float64
	Shingle     int      // forest: windows per point
	Trees       int      // forest: random cut trees
	Sample      int      // forest: points each tree holds (the last Sample shingles)
	Metrics     []string // forest: the metrics of one device it reads together (instead of metric)

	Per   time.Duration // rate: the change is expressed per this duration
	After time.Duration // missing: silence that fires

	// Annotations and labels, carried by every alert of the rule (SNS,
	// the alerts dataset): not part of what the rule decides, so editing
	// them keeps its state. Summary and RunbookURL may name {{device}},
	// {{metric}}, {{value}}, {{threshold}} and {{rule}}.
	Summary    string
	RunbookURL string
	Labels     map[string]string

	File string // where the rule was defined, for messages
	Line int
}

// Config is a validated rules file.
type Config struct {
	Rules []*Rule
	// File and Source are where the rules came from and their text, as
	// Parse read them: a shard's snapshot carries them, so a restore
	// continues under the rules its state was built with, and a reload
	// recorded in a shard's stream replays from them.
	File   string
	Source []byte

	// Noise control (notify.go): Route and Inhibit from the document's
	// route and inhibit keys, Silences attached by the service.
	Route    Route
	Inhibit  []Inhibit
	Silences []Silence
}

// Rule returns the rule named name, or nil.
func (c *Config) Rule(name string) *Rule {
	for _, r := range c.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Specs are the windows the rules read: each rule's window, parsed from
// its name (a window's name is its definition), once, in name order; 1m
// when no rule reads one. Backtests and rule tests run with these.
func (c *Config) Specs() ([]windows.Spec, error) {
	var names []string
	for _, r := range c.Rules {
		if r.Window != "" && !slices.Contains(names, r.Window) {
			names = append(names, r.Window)
		}
	}
	if len(names) == 0 {
		names = []string{"1m"}
	}
	slices.Sort(names)
	var specs []windows.Spec
	for _, n := range names {
		sp, err := windows.ParseSpec(n)
		if err != nil {
			return nil, err
		}
		specs = append(specs, sp)
	}
	return specs, nil
}

// Load reads and validates a rules file.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return Parse(file, data)
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// Parse validates a rules document. Errors name the file, line and field.
func Parse(file string, data []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty rules file", file)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: expected a mapping with key \"rules\"", file, root.Line)
	}
	cfg := &Config{File: file, Source: bytes.Clone(data)}
	var rulesNode *yaml.Node
	for i := 0; i < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		var err error
		switch k.Value {
		case "rules":
			rulesNode = v
		case "route":
			if err = decodeStrict(v, &cfg.Route, "group_by", "group_wait", "group_interval"); err == nil {
				err = cfg.Route.check()
			}
		case "inhibit":
			if v.Kind != yaml.SequenceNode || len(v.Content) > maxInhibits {
				err = fmt.Errorf("must be a list of at most %d inhibit rules", maxInhibits)
				break
			}
			for _, n := range v.Content {
				var in Inhibit
				if err = decodeStrict(n, &in, "source", "target", "equal"); err == nil {
					err = in.check()
				}
				if err != nil {
					return nil, fmt.Errorf("%s:%d: inhibit: %w", file, n.Line, err)
				}
				cfg.Inhibit = append(cfg.Inhibit, in)
			}
		default:
			return nil, fmt.Errorf("%s:%d: unknown key %q (want \"rules\", \"route\" or \"inhibit\")", file, k.Line, k.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", file, v.Line, k.Value, err)
		}
	}
	if rulesNode == nil || rulesNode.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: \"rules\" must be a list", file, root.Line)
	}
	names := map[string]int{}
	for _, n := range rulesNode.Content {
		r, err := parseRule(file, n)
		if err != nil {
			return nil, err
		}
		if line, dup := names[r.Name]; dup {
			return nil, fmt.Errorf("%s:%d: rule %q: name already used at line %d", file, r.Line, r.Name, line)
		}
		names[r.Name] = r.Line
		cfg.Rules = append(cfg.Rules, r)
	}
	return cfg, nil
}

// decodeStrict decodes a mapping node into v, refusing keys not listed.
func decodeStrict(n *yaml.Node, v any, keys ...string) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("must be a mapping")
	}
	for i := 0; i < len(n.Content); i += 2 {
		if k := n.Content[i].Value; !slices.Contains(keys, k) {
			return fmt.Errorf("unknown key %q (want one of %s)", k, strings.Join(keys, ", "))
		}
	}
	return n.Decode(v)
}

// fieldError is a validation error located at a field.
type fieldError struct {
	file  string
	line  int
	rule  string
	field string
	msg   string
}

func (e *fieldError) Error() string {
	if e.field == "" {
		return fmt.Sprintf("%s:%d: rule %q: %s", e.file, e.line, e.rule, e.msg)
	}
	return fmt.Sprintf("%s:%d: rule %q: field %q: %s", e.file, e.line, e.rule, e.field, e.msg)
}

func parseRule(file string, n *yaml.Node) (*Rule, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: a rule must be a mapping", file, n.Line)
	}
	r := &Rule{File: file, Line: n.Line, Devices: "*", Severity: "warning"}
	lines := map[string]int{}
	var kind, forStr string
	var forN *int
	var mofn *struct {
		M int `yaml:"m"`
		N int `yaml:"n"`
	}
	var alpha, gamma, clearZ, drift, noveltyRise *float64
	var warmup, history, novelty, noveltyWarmup, shingle, trees, sample *int
	var per, after, season, repeat, routine string
	fail := func(field, format string, args ...any) error {
		line := r.Line
		if l, ok := lines[field]; ok {
			line = l
		}
		return &fieldError{file, line, r.Name, field, fmt.Sprintf(format, args...)}
	}
	// Where each field decodes to ("for" is a count or a mistake).
	fields := map[string]any{
		"name":            &r.Name,
		"kind":            &kind,
		"severity":        &r.Severity,
		"devices":         &r.Devices,
		"metric":          &r.Metric,
		"window":          &r.Window,
		"aggregate":       &r.Aggregate,
		"above":           &r.Above,
		"below":           &r.Below,
		"clear":           &r.Clear,
		"m_of_n":          &mofn,
		"keep_firing_for": &r.KeepFiringFor,
		"z":               &r.Z,
		"clear_z":         &clearZ,
		"alpha":           &alpha,
		"warmup":          &warmup,
		"gamma":           &gamma,
		"history":         &history,
		"season":          &season,
		"drift":           &drift,
		"from":            &r.From,
		"summary":         &r.Summary,
		"runbook_url":     &r.RunbookURL,
		"labels":          &r.Labels,
		"novelty":         &novelty,
		"novelty_warmup":  &noveltyWarmup,
		"novelty_rise":    &noveltyRise,
		"shingle":         &shingle,
		"trees":           &trees,
		"sample":          &sample,
		"metrics":         &r.Metrics,
		"per":             &per,
		"after":           &after,
		"repeat_interval": &repeat,
		"routine":         &routine,
	}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := lines[k.Value]; dup {
			return nil, &fieldError{file, k.Line, r.Name, k.Value, "set twice"}
		}
		lines[k.Value] = k.Line
		target, known := fields[k.Value]
		switch {
		case k.Value == "for" && v.Tag == "!!int":
			target = &forN
		case k.Value == "for":
			target = &forStr
		case !known:
			return nil, &fieldError{file, k.Line, r.Name, k.Value, "unknown field"}
		}
		if err := v.Decode(target); err != nil {
			var te *yaml.TypeError
			msg := err.Error()
			if errors.As(err, &te) && len(te.Errors) > 0 {
				msg = te.Errors[0]
			}
			return nil, &fieldError{file, v.Line, r.Name, k.Value, msg}
		}
	}
	if !nameRE.MatchString(r.Name) {
		return nil, fail("name", "must be 1-64 characters of [a-zA-Z0-9_.-]")
	}
	if err := checkAnnotations(r, fail); err != nil {
		return nil, err
	}
	var ok bool
	if r.Kind, ok = kindNames[kind]; !ok {
		return nil, fail("kind", "must be threshold, rate, zscore, robust, seasonal, cusum, forest or missing, not %q", kind)
	}
	switch r.Severity {
	case "info", "warning", "critical":
	default:
		return nil, fail("severity", "must be info, warning or critical, not %q", r.Severity)
	}
	if _, err := path.Match(r.Devices, "x"); err != nil {
		return nil, fail("devices", "bad glob %q: %v", r.Devices, err)
	}
	if _, err := path.Match(r.Metric, "x"); err != nil {
		return nil, fail("metric", "bad glob %q: %v", r.Metric, err)
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"above", r.Above}, {"below", r.Below}, {"clear", r.Clear}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			return nil, fail(f.name, "must be a finite number")
		}
	}

	for _, f := range optionFields {
		if _, set := lines[f]; set && !contains(kindFields[r.Kind], f) {
			return nil, fail(f, "not used by kind %s (it reads %v)", r.Kind, kindFields[r.Kind])
		}
	}
	if repeat != "" {
		d, err := time.ParseDuration(repeat)
		if err != nil || d <= 0 {
			return nil, fail("repeat_interval", "must be a positive duration like 4h, not %q", repeat)
		}
		r.Repeat = d
	}
	if routine != "" {
		d, err := time.ParseDuration(routine)
		if err != nil || d < time.Minute {
			return nil, fail("routine", "must be a period of a minute or more, like 168h, not %q", routine)
		}
		if r.Repeat > 0 {
			return nil, fail("routine", "not with repeat_interval: a FIRING is compared with the rule's last notification on the series")
		}
		r.Routine = d
	}
	if r.Kind == Missing {
		for _, f := range []string{"window", "aggregate", "for", "m_of_n", "keep_firing_for", "routine"} {
			if _, set := lines[f]; set {
				return nil, fail(f, "not used by kind missing")
			}
		}
		d, err := time.ParseDuration(after)
		if err != nil || d <= 0 {
			return nil, fail("after", "must be a positive duration like 5m, not %q", after)
		}
		r.After = d
		return r, nil
	}
	switch {
	case r.Kind == Forest && len(r.Metrics) > 0:
		if r.Metric != "" {
			return nil, fail("metrics", "use either metric (one forest per series) or metrics (one per device)")
		}
		if len(r.Metrics) > maxForestMetrics {
			return nil, fail("metrics", "at most %d metrics", maxForestMetrics)
		}
		for i, m := range r.Metrics {
			if !schemas.ValidMetricName(m) || slices.Contains(r.Metrics[:i], m) {
				return nil, fail("metrics", "%q is not a metric name, or is listed twice", m)
			}
		}
	case r.Metric == "":
		return nil, fail("metric", "required for kind %s", r.Kind)
	}
	if r.Window == "" {
		return nil, fail("window", "required for kind %s (the name of a window spec)", r.Kind)
	}
	if r.Kind == Stuck {
		// It reads each window's range, and reports the value held.
		if r.Aggregate != "" {
			return nil, fail("aggregate", "not used by kind stuck (it reads each window's min and max)")
		}
		r.Aggregate = "last"
	}
	if r.Aggregate == "" {
		r.Aggregate = "mean"
	}
	if !contains(aggregates, r.Aggregate) {
		return nil, fail("aggregate", "must be one of %v, not %q", aggregates, r.Aggregate)
	}

	// Firing condition: for: N, or m_of_n: {m, n}.
	r.M, r.N = 1, 1
	switch {
	case forN != nil && mofn != nil:
		return nil, fail("m_of_n", "use either for or m_of_n")
	case forStr != "":
		return nil, fail("for", "is a number of consecutive windows, not %q", forStr)
	case forN != nil:
		r.M, r.N = *forN, *forN
		if r.N < 1 || r.N > 64 {
			return nil, fail("for", "must be 1..64 windows")
		}
	case mofn != nil:
		r.M, r.N = mofn.M, mofn.N
		if r.M < 1 || r.N > 64 || r.M > r.N {
			return nil, fail("m_of_n", "need 1 <= m <= n <= 64, got m=%d n=%d", r.M, r.N)
		}
	}
	if r.KeepFiringFor < 0 {
		return nil, fail("keep_firing_for", "must not be negative")
	}

	if r.Kind == Stuck {
		r.History = defaultStuckHistory
		if history != nil {
			if *history < 1 || *history > 100000 {
				return nil, fail("history", "must be 1..100000 windows")
			}
			r.History = *history
		}
		return r, nil
	}
	if !r.Kind.scored() {
		if err := r.checkLevels(fail); err != nil {
			return nil, err
		}
		if r.Kind == Rate {
			r.Per = time.Minute
			if per != "" {
				d, err := time.ParseDuration(per)
				if err != nil || d <= 0 {
					return nil, fail("per", "must be a positive duration, not %q", per)
				}
				r.Per = d
			}
		}
		return r, nil
	}
	if !(r.Z > 0) || math.IsInf(r.Z, 0) {
		return nil, fail("z", "must be a positive number of standard deviations")
	}
	r.ClearZ = r.Z
	if clearZ != nil {
		if !(*clearZ > 0 && *clearZ <= r.Z) {
			return nil, fail("clear_z", "must be in (0, z]")
		}
		r.ClearZ = *clearZ
	}
	unit := func(field string, v *float64, def float64) (float64, error) {
		if v == nil {
			return def, nil
		}
		if !(*v > 0 && *v <= 1) {
			return 0, fail(field, "must be in (0, 1]")
		}
		return *v, nil
	}
	var err error
	if r.Alpha, err = unit("alpha", alpha, defaultAlpha[r.Kind]); err != nil {
		return nil, err
	}
	if r.Gamma, err = unit("gamma", gamma, 0.1); err != nil {
		return nil, err
	}
	r.History = 96
	if history != nil {
		if *history < 3 || *history > 1024 {
			return nil, fail("history", "must be 3..1024 windows")
		}
		r.History = *history
	}
	r.Warmup = defaultWarmup[r.Kind]
	if r.Kind == Robust {
		r.Warmup = min(r.History, 24)
	}
	if warmup != nil {
		if *warmup < 2 || *warmup > 100000 {
			return nil, fail("warmup", "must be 2..100000 windows")
		}
		if r.Kind == Robust && *warmup > r.History {
			return nil, fail("warmup", "must not exceed history (%d)", r.History)
		}
		r.Warmup = *warmup
	}
	if r.Kind == Seasonal {
		d, err := time.ParseDuration(season)
		if err != nil || d < time.Minute {
			return nil, fail("season", "must be the cycle's duration, like 24h or 168h, not %q", season)
		}
		r.Season = d
	}
	if novelty != nil {
		if *novelty < 1 || *novelty > 100000 {
			return nil, fail("novelty", "must be a half-life of 1..100000 windows")
		}
		r.Novelty = *novelty
	}
	if noveltyWarmup != nil {
		if r.Novelty == 0 {
			return nil, fail("novelty_warmup", "needs novelty: it is the novelty peak's learning period")
		}
		if *noveltyWarmup < 0 || *noveltyWarmup > 100000 {
			return nil, fail("novelty_warmup", "must be 0..100000 windows")
		}
		r.NoveltyWarmup = *noveltyWarmup
	}
	if noveltyRise != nil {
		if r.Novelty == 0 {
			return nil, fail("novelty_rise", "needs novelty: it bounds how fast the novelty peak rises")
		}
		if !(*noveltyRise > 1 && *noveltyRise <= 1000) {
			return nil, fail("novelty_rise", "must be a factor over 1 (at most 1000), like 1.5")
		}
		r.NoveltyRise = *noveltyRise
	}
	if r.From == "" {
		r.From = "median"
	}
	if _, ok := robustFrom[r.From]; !ok {
		return nil, fail("from", "must be median, range, below or above, not %q", r.From)
	}
	if r.Kind == CUSUM {
		r.Drift = min(0.5, r.Z/2)
	}
	if r.Kind == Forest {
		for _, o := range []struct {
			field         string
			v, to         *int
			def, min, max int
		}{{"shingle", shingle, &r.Shingle, 4, 1, 16}, {"trees", trees, &r.Trees, 20, 1, 100}, {"sample", sample, &r.Sample, 64, 8, 1024}} {
			*o.to = o.def
			if o.v != nil {
				if *o.v < o.min || *o.v > o.max {
					return nil, fail(o.field, "must be %d..%d", o.min, o.max)
				}
				*o.to = *o.v
			}
		}
		if d := max(1, len(r.Metrics)) * r.Shingle; d > maxForestDims {
			return nil, fail("shingle", "metrics × shingle is %d, at most %d", d, maxForestDims)
		}
		if warmup == nil {
			r.Warmup = r.Sample / 2
		}
	}
	if drift != nil {
		if !(*drift >= 0 && *drift < r.Z) {
			return nil, fail("drift", "must be in [0, z)")
		}
		r.Drift = *drift
	}
	return r, nil
}

// defaultStuckHistory is a week of hourly windows: a series flat every
// weekend (a machine idle) has a flat window within any week, so it never
// counts as stuck; one that varied all week and then holds a value does.
const defaultStuckHistory = 168

// Forest bounds: a point has at most maxForestDims values.
const (
	maxForestMetrics = 16
	maxForestDims    = 64
)

// Defaults of the scored kinds: zscore and cusum baselines follow the
// series slowly; the seasonal level faster, as its offsets carry the shape.
var (
	defaultAlpha  = map[Kind]float64{ZScore: 0.1, Robust: 0.1, Seasonal: 0.05, CUSUM: 0.02, Forest: 0.05}
	defaultWarmup = map[Kind]int{ZScore: 10, CUSUM: 24}
)

// Bounds of a rule's annotations and labels.
const (
	maxSummary = 512
	maxURL     = 512
	maxLabels  = 16
	maxLabel   = 128
)

// checkAnnotations validates summary, runbook_url and labels: bounded,
// printable, the URL https (it ends up in a page ops click), label names
// like rule names.
func checkAnnotations(r *Rule, fail func(string, string, ...any) error) error {
	printable := func(s string) bool {
		return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
	}
	if len(r.Summary) > maxSummary || !printable(r.Summary) {
		return fail("summary", "must be at most %d printable bytes", maxSummary)
	}
	if r.RunbookURL != "" {
		u, err := url.Parse(strings.NewReplacer("{{", "", "}}", "").Replace(r.RunbookURL))
		if len(r.RunbookURL) > maxURL || !printable(r.RunbookURL) || err != nil || u.Scheme != "https" || u.Host == "" {
			return fail("runbook_url", "must be an https URL of at most %d bytes", maxURL)
		}
	}
	if len(r.Labels) > maxLabels {
		return fail("labels", "at most %d labels", maxLabels)
	}
	for k, v := range r.Labels {
		if !nameRE.MatchString(k) || len(v) > maxLabel || !printable(v) {
			return fail("labels", "%q: names are 1-64 characters of [a-zA-Z0-9_.-], values at most %d printable bytes", k, maxLabel)
		}
	}
	return nil
}

// Annotate fills a rule's template with an alert's values: {{device}},
// {{metric}}, {{value}}, {{threshold}}, {{rule}}. Nothing else is
// interpreted, so a template cannot run code or reach other data.
func (r *Rule) Annotate(tmpl, device, metric string, value, threshold float64) string {
	if !strings.Contains(tmpl, "{{") {
		return tmpl
	}
	return strings.NewReplacer("{{device}}", device, "{{metric}}", metric, "{{rule}}", r.Name,
		"{{value}}", strconv.FormatFloat(value, 'g', 6, 64), "{{threshold}}", strconv.FormatFloat(threshold, 'g', 6, 64)).Replace(tmpl)
}

func (r *Rule) checkLevels(fail func(string, string, ...any) error) error {
	switch {
	case r.Above == nil && r.Below == nil:
		return fail("above", "one of above or below is required")
	case r.Above != nil && r.Below != nil && r.Clear != nil:
		return fail("clear", "cannot be combined with both above and below")
	case r.Above != nil && r.Below != nil && *r.Below >= *r.Above:
		return fail("below", "must be less than above (bad outside [below, above])")
	case r.Clear != nil && r.Above != nil && *r.Clear > *r.Above:
		return fail("clear", "must not exceed above (%g): it is the level the value must fall to", *r.Above)
	case r.Clear != nil && r.Below != nil && *r.Clear < *r.Below:
		return fail("clear", "must not be below below (%g): it is the level the value must rise to", *r.Below)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
