package schemas

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func goodAlert() AlertMessage {
	return AlertMessage{ID: "0123456789abcdef", Incident: "fedcba9876543210", State: AlertFiring, Rule: "keg-leak", Kind: "threshold",
		Severity: "critical", Device: "keg-0042", Metric: "flow_lpm", Window: "1m", Value: 0.3, Threshold: 0.05,
		Start: "2026-11-27T18:00:00.000Z", End: "2026-11-27T18:01:00.000Z", At: "2026-11-27T18:01:00.000Z", Message: "flow while closed"}
}

// TestAlertMessageValidate: what a forged dead letter or notification
// could carry is refused with the field named.
func TestAlertMessageValidate(t *testing.T) {
	m := goodAlert()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	m.Attribution = []MetricShare{{"rpm", 0.85}, {"temp", 0.15}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for want, mutate := range map[string]func(*AlertMessage){
		"alert_id":     func(m *AlertMessage) { m.ID = "x" },
		"incident_id":  func(m *AlertMessage) { m.Incident = "0123456789ABCDEF" },
		"state":        func(m *AlertMessage) { m.State = "PENDING" },
		"device_id":    func(m *AlertMessage) { m.Device = "keg/../x" },
		"metric":       func(m *AlertMessage) { m.Metric = "a b" },
		"rule \"leak":  func(m *AlertMessage) { m.Rule = "leak\nSubject: forged" },
		"kind":         func(m *AlertMessage) { m.Kind = "" },
		"severity":     func(m *AlertMessage) { m.Severity = strings.Repeat("s", 129) },
		"message":      func(m *AlertMessage) { m.Message = "a\x00b" },
		"window_spec":  func(m *AlertMessage) { m.Window = "1m\r" },
		"at":           func(m *AlertMessage) { m.At = "yesterday" },
		"window_start": func(m *AlertMessage) { m.Start = "" },
		"attribution \"a b\"": func(m *AlertMessage) {
			m.Attribution = []MetricShare{{"temp", 0.5}, {"a b", 0.5}}
		},
		"attribution \"temp\" NaN": func(m *AlertMessage) { m.Attribution = []MetricShare{{"temp", math.NaN()}} },
		"attribution of 17":        func(m *AlertMessage) { m.Attribution = make([]MetricShare, 17) },
		"reason":                   func(m *AlertMessage) { m.Reason = "because" },
		"runbook_url \"http":       func(m *AlertMessage) { m.RunbookURL = "http://wiki/x" },
		"label \"a\\nb\"":          func(m *AlertMessage) { m.Labels = map[string]string{"a\nb": "c"} },
		"summary":                  func(m *AlertMessage) { m.Summary = strings.Repeat("s", 1025) },
	} {
		m := goodAlert()
		mutate(&m)
		err := m.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.ContainsAny(err.Error(), "\n\r\x00") {
			t.Errorf("%s: %v", want, err)
		}
	}
}

// TestAlertMessageMAC: a signed message verifies with its key only, and
// any change to any field breaks it.
func TestAlertMessageMAC(t *testing.T) {
	key := []byte(strings.Repeat("k", MinMACKey))
	m := goodAlert()
	if err := m.Sign(key); err != nil || len(m.MAC) != 64 {
		t.Fatalf("sign: %q, %v", m.MAC, err)
	}
	if err := m.Verify(key); err != nil {
		t.Fatal(err)
	}
	other := []byte(strings.Repeat("o", MinMACKey))
	if err := m.Verify(other); !errors.Is(err, ErrUnauthentic) {
		t.Fatalf("another key: %v", err)
	}
	for name, mutate := range map[string]func(*AlertMessage){
		"device": func(m *AlertMessage) { m.Device = "keg-0043" },
		"state":  func(m *AlertMessage) { m.State = AlertResolved },
		"value":  func(m *AlertMessage) { m.Value += 1e-9 },
		"rule":   func(m *AlertMessage) { m.Rule = "keg-warm" },
		"no mac": func(m *AlertMessage) { m.MAC = "" },
		"bad":    func(m *AlertMessage) { m.MAC = "zz" },
	} {
		c := m
		mutate(&c)
		if err := c.Verify(key); !errors.Is(err, ErrUnauthentic) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := m.Sign(key[:MinMACKey-1]); err == nil {
		t.Error("signed with a short key")
	}
}
