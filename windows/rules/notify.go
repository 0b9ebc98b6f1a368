package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows/wire"
)

// Noise control, in event time and inside the shard, so a replay makes
// the same decisions (Prometheus users get these from Alertmanager, a
// cluster of its own; IoT Events users had acknowledge and snooze):
//
//   - route: group_by, group_wait, group_interval (Alertmanager's route):
//     alerts sharing the values of the group_by labels go out as one
//     notification, group_wait after the group's first alert, then at
//     most every group_interval;
//   - inhibit: while a source alert fires, target alerts with the same
//     values of the equal labels are suppressed (Alertmanager's
//     inhibit_rules);
//   - silences: alerts matching a silence's matchers with an event time
//     in its range are suppressed.
//
// A suppressed alert keeps its row in the alerts dataset with state
// SUPPRESSED (and why, in reason) and is not notified; the RESOLVED of a
// suppressed FIRING is suppressed too, ops never having heard of it.
// Times are the alerts' (Alert.At) and the shard's watermark, never the
// wall clock.
//
// An alert's labels for matching and grouping: rule, severity, kind,
// device, metric, window, state, and its rule's labels.

// Route groups alerts into notifications. The zero Route notifies each
// alert alone, at once.
type Route struct {
	GroupBy       []string      `yaml:"group_by"`
	GroupWait     time.Duration `yaml:"group_wait"`
	GroupInterval time.Duration `yaml:"group_interval"`
}

// Inhibit suppresses Target alerts while a Source alert with the same
// Equal labels fires. Matchers map a label to a glob (path.Match).
type Inhibit struct {
	Source map[string]string `yaml:"source"`
	Target map[string]string `yaml:"target"`
	Equal  []string          `yaml:"equal"`
}

// Silence suppresses the alerts its matchers match whose event time lies
// in [Starts, Ends). Silences are objects in S3 (tapline silence), which
// others may be able to write: Validate before use.
type Silence struct {
	ID        string            `json:"id"`
	Matchers  map[string]string `json:"matchers"`
	Starts    time.Time         `json:"starts"`
	Ends      time.Time         `json:"ends"`
	Comment   string            `json:"comment,omitempty"`
	CreatedBy string            `json:"created_by,omitempty"`
}

// Bounds of what a rules file or a silence may ask of a shard.
const (
	// MaxGroup is the most alerts one notification lists; a group with
	// more sends several (SNS messages are at most 256 KiB).
	MaxGroup      = schemas.MaxGroup
	maxInhibits   = 32
	maxMatchers   = 16
	MaxSilences   = 1000
	maxSilenceFor = 366 * 24 * time.Hour
	maxComment    = 512
)

// label returns the value of an alert's label name.
func (a *Alert) label(name string) string {
	switch name {
	case "rule":
		return a.Rule
	case "severity":
		return a.Severity
	case "kind":
		return a.Kind
	case "device":
		return a.Device
	case "metric":
		return a.Metric
	case "window":
		return a.Window
	case "state":
		return string(a.State)
	}
	return a.Labels[name]
}

func matches(m map[string]string, a *Alert) bool {
	for k, glob := range m {
		if ok, _ := path.Match(glob, a.label(k)); !ok {
			return false
		}
	}
	return true
}

func checkMatchers(m map[string]string) error {
	if len(m) == 0 || len(m) > maxMatchers {
		return fmt.Errorf("1 to %d matchers, not %d", maxMatchers, len(m))
	}
	for k, glob := range m {
		if err := checkLabelName(k); err != nil {
			return err
		}
		if _, err := path.Match(glob, ""); err != nil || len(glob) > maxLabel || !printable(glob) {
			return fmt.Errorf("matcher %s: %q is not a glob of at most %d printable bytes", k, glob, maxLabel)
		}
	}
	return nil
}

func checkLabelName(k string) error {
	if !nameRE.MatchString(k) {
		return fmt.Errorf("label %q: names are 1-64 characters of [a-zA-Z0-9_.-]", k)
	}
	return nil
}

func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

func (r *Route) check() error {
	if len(r.GroupBy) > maxMatchers {
		return fmt.Errorf("group_by: at most %d labels", maxMatchers)
	}
	for _, k := range r.GroupBy {
		if err := checkLabelName(k); err != nil {
			return fmt.Errorf("group_by: %w", err)
		}
	}
	if r.GroupWait < 0 || r.GroupInterval < 0 || r.GroupWait > 24*time.Hour || r.GroupInterval > 24*time.Hour {
		return errors.New("group_wait and group_interval must lie in [0, 24h]")
	}
	return nil
}

func (in *Inhibit) check() error {
	if err := checkMatchers(in.Source); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if err := checkMatchers(in.Target); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if len(in.Equal) > maxMatchers {
		return fmt.Errorf("equal: at most %d labels", maxMatchers)
	}
	for _, k := range in.Equal {
		if err := checkLabelName(k); err != nil {
			return fmt.Errorf("equal: %w", err)
		}
	}
	return nil
}

// Validate checks a silence read from storage.
func (s *Silence) Validate() error {
	switch {
	case !nameRE.MatchString(s.ID):
		return fmt.Errorf("silence %q: id must be 1-64 characters of [a-zA-Z0-9_.-]", truncate(s.ID))
	case !s.Ends.After(s.Starts) || s.Ends.Sub(s.Starts) > maxSilenceFor:
		return fmt.Errorf("silence %s: must end after it starts, within %v", s.ID, maxSilenceFor)
	case len(s.Comment) > maxComment || len(s.CreatedBy) > maxLabel || !printable(s.Comment) || !printable(s.CreatedBy):
		return fmt.Errorf("silence %s: comment and created_by must be printable, at most %d and %d bytes", s.ID, maxComment, maxLabel)
	}
	if err := checkMatchers(s.Matchers); err != nil {
		return fmt.Errorf("silence %s: %w", s.ID, err)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// covers reports whether the silence suppresses a.
func (s *Silence) covers(a *Alert) bool {
	return a.At >= s.Starts.UnixMilli() && a.At < s.Ends.UnixMilli() && matches(s.Matchers, a)
}

// recordMagic starts a Record.
const recordMagic = "tapline.control/1\n"

// Record is the configuration as a shard records it (a reload in its
// journal, its snapshot): the rules' file name, the silences, the rules
// document. Two configurations with the same record decide the same.
func (c *Config) Record() []byte {
	if len(c.Source) == 0 {
		return nil
	}
	sil, _ := json.Marshal(c.Silences) // cannot fail: plain values
	b := append([]byte(recordMagic), c.File...)
	b = append(append(append(b, '\n'), sil...), '\n')
	return append(b, c.Source...)
}

// ParseRecord reads a Record.
func ParseRecord(b []byte) (*Config, error) {
	rest, ok := bytes.CutPrefix(b, []byte(recordMagic))
	if !ok {
		return nil, errors.New("rules: not a recorded configuration")
	}
	file, rest, _ := bytes.Cut(rest, []byte("\n"))
	sil, src, _ := bytes.Cut(rest, []byte("\n"))
	var silences []Silence
	if err := json.Unmarshal(sil, &silences); err != nil {
		return nil, fmt.Errorf("rules: recorded silences: %w", err)
	}
	cfg, err := Parse(string(file), src)
	if err != nil {
		return nil, err
	}
	return cfg.WithSilences(silences)
}

// WithSilences returns a copy of c with silences in place of its own,
// each validated, sorted by id.
func (c *Config) WithSilences(silences []Silence) (*Config, error) {
	if len(silences) > MaxSilences {
		return nil, fmt.Errorf("rules: %d silences, at most %d", len(silences), MaxSilences)
	}
	for i := range silences {
		if err := silences[i].Validate(); err != nil {
			return nil, err
		}
	}
	cp := *c
	cp.Silences = slices.Clone(silences)
	slices.SortFunc(cp.Silences, func(a, b Silence) int { return strings.Compare(a.ID, b.ID) })
	return &cp, nil
}

// Same reports whether c and o decide the same: same rules document,
// same silences.
func (c *Config) Same(o *Config) bool { return bytes.Equal(c.Record(), o.Record()) }

// Router applies a configuration's silences, inhibitions and route to
// the engine's alerts: each alert goes to row (the alerts dataset),
// suppressed or not, and the others to notify, alone or grouped (Alert.
// Group). Advance flushes the groups due at a watermark. It belongs to
// the shard's goroutine.
type Router struct {
	cfg         *Config
	row, notify AlertFunc
	// inhibiting counts the FIRING source alerts of each inhibit rule by
	// their equal labels' values (key: rule index, values); sources maps
	// each such incident to its keys.
	inhibiting map[string]int
	sources    map[string][]string
	suppressed map[string]string // FIRING incident suppressed → why
	groups     map[string]*group
}

type group struct {
	alerts []Alert
	due    int64 // event time the pending alerts go out; 0: none pending
	last   int64 // event time of the last notification
}

// NewRouter routes by cfg (nil: no noise control) to row and notify
// (either may be nil).
func NewRouter(cfg *Config, row, notify AlertFunc) *Router {
	if cfg == nil {
		cfg = &Config{}
	}
	if row == nil {
		row = func(*Alert) {}
	}
	if notify == nil {
		notify = func(*Alert) {}
	}
	return &Router{cfg: cfg, row: row, notify: notify, inhibiting: map[string]int{}, sources: map[string][]string{},
		suppressed: map[string]string{}, groups: map[string]*group{}}
}

// SetConfig routes by cfg from here on: the pending groups go out first
// (a new route may group otherwise); inhibitions by sources that still
// fire and suppressions of FIRING alerts carry over.
func (r *Router) SetConfig(cfg *Config, wm int64) {
	r.flush(wm, true)
	r.cfg = cfg
}

// Alert routes one alert.
func (r *Router) Alert(a *Alert) {
	why := r.suppression(a)
	// A source inhibits whether or not it is itself suppressed (as in
	// Alertmanager): a silenced offline alert still explains the others.
	for i := range r.cfg.Inhibit {
		in := &r.cfg.Inhibit[i]
		if !matches(in.Source, a) {
			continue
		}
		key := inhibitKey(i, in, a)
		switch {
		case a.State == Firing && a.Repeat == 0 && !slices.Contains(r.sources[a.Incident], key):
			r.sources[a.Incident] = append(r.sources[a.Incident], key)
			r.inhibiting[key]++
		case a.State == Resolved && slices.Contains(r.sources[a.Incident], key):
			if r.inhibiting[key]--; r.inhibiting[key] <= 0 {
				delete(r.inhibiting, key)
			}
		}
	}
	if a.State == Resolved {
		delete(r.sources, a.Incident)
	}
	if why == "" && a.State == Firing {
		delete(r.suppressed, a.Incident) // a reminder after its silence ended
	}
	if why != "" {
		if a.State == Firing {
			r.suppressed[a.Incident] = why
		} else {
			delete(r.suppressed, a.Incident)
		}
		a.Reason = strings.TrimSpace(string(a.State) + " " + why + " " + a.Reason)
		a.State = schemas.AlertSuppressed
		r.row(a)
		return
	}
	r.row(a)
	if len(r.cfg.Route.GroupBy) == 0 {
		r.notify(a)
		return
	}
	key := r.groupKey(a)
	g := r.groups[key]
	if g == nil {
		g = &group{}
		r.groups[key] = g
	}
	if g.due == 0 {
		g.due = a.At + r.cfg.Route.GroupWait.Milliseconds()
		if g.last != 0 {
			g.due = max(g.last+r.cfg.Route.GroupInterval.Milliseconds(), a.At)
		}
	}
	g.alerts = append(g.alerts, *a)
	if len(g.alerts) == MaxGroup {
		r.send(g, a.At)
	}
}

// suppression says why a is suppressed, "" if it is not.
func (r *Router) suppression(a *Alert) string {
	if a.State == Resolved {
		if why, ok := r.suppressed[a.Incident]; ok {
			return why
		}
	}
	if a.State == Firing && a.routine {
		return "routine: a whole number of periods after the rule's last FIRING on the series"
	}
	for i := range r.cfg.Silences {
		if s := &r.cfg.Silences[i]; s.covers(a) {
			return "silenced by " + s.ID
		}
	}
	for i := range r.cfg.Inhibit {
		in := &r.cfg.Inhibit[i]
		if matches(in.Target, a) && r.inhibiting[inhibitKey(i, in, a)] > 0 && !slices.Contains(r.sources[a.Incident], inhibitKey(i, in, a)) {
			return fmt.Sprintf("inhibited by %s", labelsOf(in.Source))
		}
	}
	return ""
}

func labelsOf(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func inhibitKey(i int, in *Inhibit, a *Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", i)
	for _, k := range in.Equal {
		b.WriteByte(0)
		b.WriteString(a.label(k))
	}
	return b.String()
}

func (r *Router) groupKey(a *Alert) string {
	var b strings.Builder
	for _, k := range r.cfg.Route.GroupBy {
		b.WriteString(a.label(k))
		b.WriteByte(0)
	}
	return b.String()
}

// Advance sends the groups due at watermark wm, in key order, and forgets
// groups quiet for a group_interval.
func (r *Router) Advance(wm int64) {
	if len(r.groups) > 0 {
		r.flush(wm, false)
	}
}

// Flush sends every pending group: the end of a shard.
func (r *Router) Flush(wm int64) { r.flush(wm, true) }

func (r *Router) flush(wm int64, all bool) {
	keys := make([]string, 0, len(r.groups))
	for k, g := range r.groups {
		if g.due != 0 && (all || g.due <= wm) {
			keys = append(keys, k)
		} else if g.due == 0 && wm-g.last > r.cfg.Route.GroupInterval.Milliseconds() {
			delete(r.groups, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		g := r.groups[k]
		r.send(g, max(g.due, wm))
	}
}

// send notifies a group's pending alerts as one notification: the first
// alert carrying the others.
func (r *Router) send(g *group, at int64) {
	if len(g.alerts) == 0 {
		return
	}
	n := g.alerts[0]
	n.Group = slices.Clone(g.alerts[1:])
	r.notify(&n)
	g.alerts, g.due, g.last = g.alerts[:0], 0, at
}

// AppendSnapshot appends the router's state: firing inhibit sources,
// suppressed incidents and pending groups.
func (r *Router) AppendSnapshot(b []byte) []byte {
	w := wire.Writer{B: b}
	w.String(routerMagic)
	inc := slices.Sorted(maps.Keys(r.sources))
	w.Uint(uint64(len(inc)))
	for _, id := range inc {
		w.String(id)
		w.Uint(uint64(len(r.sources[id])))
		for _, k := range r.sources[id] {
			w.String(k)
		}
	}
	sup := slices.Sorted(maps.Keys(r.suppressed))
	w.Uint(uint64(len(sup)))
	for _, id := range sup {
		w.String(id)
		w.String(r.suppressed[id])
	}
	keys := slices.Sorted(maps.Keys(r.groups))
	w.Uint(uint64(len(keys)))
	for _, k := range keys {
		g := r.groups[k]
		w.String(k)
		w.Int(g.due)
		w.Int(g.last)
		w.Uint(uint64(len(g.alerts)))
		for i := range g.alerts {
			appendAlert(&w, &g.alerts[i])
		}
	}
	return w.B
}

const routerMagic = "tapline.router/1"

// Restore loads a snapshot from AppendSnapshot into a new Router.
func (r *Router) Restore(b []byte) ([]byte, error) {
	rd := wire.Reader{B: b}
	if m := rd.String(); m != routerMagic {
		return nil, fmt.Errorf("rules: not a router snapshot (%q)", truncate(m))
	}
	for range rd.Len(2) {
		id := rd.String()
		for range rd.Len(1) {
			k := rd.String()
			r.sources[id] = append(r.sources[id], k)
			r.inhibiting[k]++
		}
	}
	for range rd.Len(2) {
		id := rd.String()
		r.suppressed[id] = rd.String()
	}
	for range rd.Len(3) {
		k := rd.String()
		g := &group{due: rd.Int(), last: rd.Int()}
		for range rd.Len(16) {
			var a Alert
			readAlert(&rd, &a, true)
			g.alerts = append(g.alerts, a)
		}
		r.groups[k] = g
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("rules: router restore: %w", err)
	}
	return rd.B, nil
}

func appendAlert(w *wire.Writer, a *Alert) {
	for _, s := range []string{a.ID, a.Incident, a.Rule, a.Kind, a.Severity, a.Device, a.Metric, a.Window, string(a.State),
		a.Message, a.Reason, a.Summary, a.RunbookURL} {
		w.String(s)
	}
	w.Float(a.Value)
	w.Float(a.Threshold)
	w.Int(a.Start)
	w.Int(a.End)
	w.Int(a.At)
	w.Int(int64(a.Repeat))
	w.Uint(uint64(len(a.Attribution)))
	for _, s := range a.Attribution {
		w.String(s.Metric)
		w.Float(s.Share)
	}
	keys := slices.Sorted(maps.Keys(a.Labels))
	w.Uint(uint64(len(keys)))
	for _, k := range keys {
		w.String(k)
		w.String(a.Labels[k])
	}
	w.Uint(uint64(len(a.Group)))
	for i := range a.Group {
		appendAlert(w, &a.Group[i])
	}
}

// AppendAlerts appends alerts (notifications, groups included) to w, for
// state that must outlive the process.
func AppendAlerts(w *wire.Writer, alerts []Alert) {
	w.Uint(uint64(len(alerts)))
	for i := range alerts {
		appendAlert(w, &alerts[i])
	}
}

// ReadAlerts reads what AppendAlerts wrote.
func ReadAlerts(r *wire.Reader) []Alert {
	var out []Alert
	for range r.Len(16) {
		var a Alert
		readAlert(r, &a, false)
		out = append(out, a)
	}
	return out
}

// readAlert reads what appendAlert wrote; nested is set for a group's
// members, which have no group of their own.
func readAlert(r *wire.Reader, a *Alert, nested bool) {
	var state string
	for _, s := range []*string{&a.ID, &a.Incident, &a.Rule, &a.Kind, &a.Severity, &a.Device, &a.Metric, &a.Window, &state,
		&a.Message, &a.Reason, &a.Summary, &a.RunbookURL} {
		*s = r.String()
	}
	a.State = State(state)
	a.Value, a.Threshold = r.Float(), r.Float()
	a.Start, a.End, a.At, a.Repeat = r.Int(), r.Int(), r.Int(), int(r.Int())
	for range r.Len(9) {
		a.Attribution = append(a.Attribution, schemas.MetricShare{Metric: r.String(), Share: r.Float()})
	}
	if n := r.Len(2); n > 0 {
		a.Labels = make(map[string]string, n)
		for range n {
			k := r.String()
			a.Labels[k] = r.String()
		}
	}
	n := r.Len(16)
	if n > 0 && (nested || n >= MaxGroup) {
		r.Fail("a group of %d alerts inside a group, or over %d", n, MaxGroup)
		return
	}
	for range n {
		var g Alert
		readAlert(r, &g, true)
		a.Group = append(a.Group, g)
	}
}
