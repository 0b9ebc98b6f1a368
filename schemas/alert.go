package schemas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AlertState is the state an alert notification announces. PENDING is
// internal to the rules engine and never delivered.
type AlertState string

// Alert states.
const (
	AlertFiring   AlertState = "FIRING"
	AlertResolved AlertState = "RESOLVED"
	// AlertSuppressed marks a row of the alerts dataset that was not
	// notified (a silence or an inhibition: its reason says which, and
	// the state it had). No message carries it.
	AlertSuppressed AlertState = "SUPPRESSED"
)

// AlertMessage is an alert as programs receive it: the body of the SNS
// message, the "alert" of a dead-lettered alert, and what the command
// Lambda reads. It is the one definition of that JSON; the SNS sink
// writes it and the command Lambda reads it.
//
// Times are RFC 3339 in UTC with milliseconds (AlertTime). A reader must
// treat every field as untrusted: an SNS topic and a dead-letter prefix
// can be written by other principals.
type AlertMessage struct {
	ID        string     `json:"alert_id"`    // unique per notification
	Incident  string     `json:"incident_id"` // shared by a FIRING alert and its RESOLVED
	State     AlertState `json:"state"`
	Rule      string     `json:"rule"`
	Kind      string     `json:"kind"`
	Severity  string     `json:"severity"`
	Device    string     `json:"device_id"`
	Metric    string     `json:"metric,omitempty"`      // empty for a device-level rule
	Window    string     `json:"window_spec,omitempty"` // window spec name
	Value     float64    `json:"value"`
	Threshold float64    `json:"threshold"`
	Start     string     `json:"window_start"`
	End       string     `json:"window_end"`
	At        string     `json:"at"` // event time of the transition
	Message   string     `json:"message"`
	// Attribution: for a rule over several metrics (a forest), each
	// metric's share of the score, largest first.
	Attribution []MetricShare `json:"attribution,omitempty"`
	// Summary, RunbookURL and Labels come from the rule (its templates
	// filled with this alert's device, metric, value and threshold).
	Summary    string            `json:"summary,omitempty"`
	RunbookURL string            `json:"runbook_url,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Reason: why a RESOLVED came without its condition clearing
	// ("rule_removed", "rule_changed": the rules changed under it).
	Reason string `json:"reason,omitempty"`
	// Repeat counts the notifications of a firing alert after its first
	// (the rule's repeat_interval): a reminder, which the command Lambda
	// does not act on again.
	Repeat int `json:"repeat,omitempty"`
	// MAC authenticates the message as the service's (Sign, Verify):
	// hex HMAC-SHA256 over the message without it, with a key only the
	// service and the command Lambda hold.
	MAC string `json:"mac,omitempty"`
	// Group: a notification of several alerts grouped by the rules'
	// route is its first alert with the others here (at most
	// MaxGroup-1); they carry no MAC of their own, the message's covers
	// them.
	Group []AlertMessage `json:"group,omitempty"`
}

// MaxGroup bounds the alerts one message lists.
const MaxGroup = 100

// MetricShare is one metric's share (0..1) of a multi-metric score.
type MetricShare struct {
	Metric string  `json:"metric"`
	Share  float64 `json:"share"`
}

// maxAttribution bounds an alert's attribution list (a forest reads at
// most this many metrics).
const maxAttribution = 16

// MinMACKey is the shortest MAC key Sign and Verify accept.
const MinMACKey = 32

// ErrUnauthentic is wrapped by Verify's errors: the message was not
// signed with the key, or was changed after.
var ErrUnauthentic = errors.New("alert message not authenticated")

// mac is the MAC of m without its MAC field. encoding/json writes the
// fields in their declared order, so the same message always gives the
// same bytes, on both sides.
func (m AlertMessage) mac(key []byte) ([]byte, error) {
	if len(key) < MinMACKey {
		return nil, fmt.Errorf("alert MAC key of %d bytes: at least %d", len(key), MinMACKey)
	}
	m.MAC = ""
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(nil), nil
}

// Sign sets m's MAC for key.
func (m *AlertMessage) Sign(key []byte) error {
	sum, err := m.mac(key)
	if err != nil {
		return err
	}
	m.MAC = hex.EncodeToString(sum)
	return nil
}

// Verify reports whether m carries the MAC key gives it.
func (m *AlertMessage) Verify(key []byte) error {
	want, err := m.mac(key)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(m.MAC)
	if err != nil || !hmac.Equal(got, want) {
		return fmt.Errorf("alert %q: %w", truncate(m.ID), ErrUnauthentic)
	}
	return nil
}

// AlertTime formats a Unix millisecond time as AlertMessage holds it.
func AlertTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

// Limits of an AlertMessage's free-text fields.
const (
	maxAlertName    = 128  // rule, kind, severity, window spec, a label's name and value
	maxAlertMessage = 1024 // message, summary, runbook URL
	maxAlertLabels  = 16
)

// Validate checks a message read from somewhere others can write (a
// dead-letter object, an SNS notification) before it reaches SNS, a
// command or a log: ids of 16 hex digits, a known state, a thing name, a
// metric name, RFC 3339 times, and names and message without control
// characters (a line break in a rule would end an SNS subject) within
// their lengths. It reports the first problem, quoting what it read.
func (m *AlertMessage) Validate() error {
	for _, id := range []struct{ name, v string }{{"alert_id", m.ID}, {"incident_id", m.Incident}} {
		if len(id.v) != 16 || strings.Trim(id.v, "0123456789abcdef") != "" {
			return fmt.Errorf("%s %q is not 16 hex digits", id.name, id.v)
		}
	}
	switch {
	case m.State != AlertFiring && m.State != AlertResolved:
		return fmt.Errorf("state %q is not FIRING or RESOLVED", m.State)
	case !ValidDeviceID(m.Device):
		return fmt.Errorf("device_id %q is not a thing name", m.Device)
	case m.Metric != "" && !ValidMetricName(m.Metric):
		return fmt.Errorf("metric %q is not a metric name", m.Metric)
	}
	for _, f := range []struct {
		name, v  string
		required bool
		max      int
	}{{"rule", m.Rule, true, maxAlertName}, {"kind", m.Kind, true, maxAlertName}, {"severity", m.Severity, true, maxAlertName},
		{"window_spec", m.Window, false, maxAlertName}, {"message", m.Message, false, maxAlertMessage},
		{"summary", m.Summary, false, maxAlertMessage}, {"runbook_url", m.RunbookURL, false, maxAlertMessage}} {
		if f.required && f.v == "" || len(f.v) > f.max {
			return fmt.Errorf("%s %q: 1-%d bytes required", f.name, truncate(f.v), f.max)
		}
		if i := strings.IndexFunc(f.v, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }); i >= 0 {
			return fmt.Errorf("%s %q has a control character or invalid UTF-8 at byte %d", f.name, truncate(f.v), i)
		}
	}
	if len(m.Labels) > maxAlertLabels {
		return fmt.Errorf("labels: %d, at most %d", len(m.Labels), maxAlertLabels)
	}
	for k, v := range m.Labels {
		if k == "" || len(k) > maxAlertName || len(v) > maxAlertName || strings.ContainsFunc(k+v, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }) {
			return fmt.Errorf("label %q: 1-%d bytes of printable text, its value at most %d", truncate(k), maxAlertName, maxAlertName)
		}
	}
	if m.RunbookURL != "" && !strings.HasPrefix(m.RunbookURL, "https://") {
		return fmt.Errorf("runbook_url %q is not https", truncate(m.RunbookURL))
	}
	switch m.Reason {
	case "", "rule_removed", "rule_changed":
	default:
		return fmt.Errorf("reason %q is not rule_removed or rule_changed", truncate(m.Reason))
	}
	if len(m.Attribution) > maxAttribution {
		return fmt.Errorf("attribution of %d metrics, at most %d", len(m.Attribution), maxAttribution)
	}
	for _, a := range m.Attribution {
		if !ValidMetricName(a.Metric) || !(a.Share >= 0 && a.Share <= 1) {
			return fmt.Errorf("attribution %q %v: want a metric name and a share in [0, 1]", truncate(a.Metric), a.Share)
		}
	}
	for _, t := range []struct{ name, v string }{{"window_start", m.Start}, {"window_end", m.End}, {"at", m.At}} {
		if _, err := time.Parse(time.RFC3339Nano, t.v); err != nil {
			return fmt.Errorf("%s %q is not an RFC 3339 time", t.name, truncate(t.v))
		}
	}
	if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) || math.IsNaN(m.Threshold) || math.IsInf(m.Threshold, 0) {
		return errors.New("value and threshold must be finite")
	}
	if len(m.Group) >= MaxGroup {
		return fmt.Errorf("group of %d alerts, at most %d", len(m.Group)+1, MaxGroup)
	}
	for i := range m.Group {
		g := &m.Group[i]
		if len(g.Group) > 0 || g.MAC != "" {
			return fmt.Errorf("group[%d]: a grouped alert carries no group or MAC of its own", i)
		}
		if err := g.Validate(); err != nil {
			return fmt.Errorf("group[%d]: %w", i, err)
		}
	}
	return nil
}

// Alerts returns the message's alerts: itself, then its group.
func (m *AlertMessage) Alerts() []*AlertMessage {
	out := []*AlertMessage{m}
	for i := range m.Group {
		out = append(out, &m.Group[i])
	}
	return out
}

// truncate shortens what an error quotes.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
