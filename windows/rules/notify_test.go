package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// routed records what a Router did.
type routed struct {
	rows  []string // state device rule reason
	notes [][]string
}

func (r *routed) router(t *testing.T, doc string, silences ...Silence) *Router {
	t.Helper()
	cfg, err := Parse("rules.yml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = cfg.WithSilences(silences); err != nil {
		t.Fatal(err)
	}
	return NewRouter(cfg, func(a *Alert) {
		r.rows = append(r.rows, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", a.State, a.Device, a.Rule, a.Reason)))
	}, func(a *Alert) {
		var n []string
		for _, m := range append([]Alert{*a}, a.Group...) {
			n = append(n, fmt.Sprintf("%s %s %s", m.State, m.Device, m.Rule))
		}
		r.notes = append(r.notes, n)
	})
}

func alert(rule, sev, device string, s State, at int64) *Alert {
	return &Alert{ID: hashID(rule, device, string(s), fmt.Sprint(at)), Incident: hashID(rule, device), Rule: rule, Kind: "threshold",
		Severity: sev, Device: device, State: s, At: at}
}

const routeDoc = `
route: {group_by: [rule], group_wait: 30s, group_interval: 5m}
inhibit:
  - {source: {rule: offline}, target: {severity: warning}, equal: [device]}
rules:
  - {name: offline, kind: missing, after: 5m, severity: critical}
  - {name: warm, kind: threshold, metric: t, window: 1m, above: 8}
`

// TestGroupWaitAndInterval: alerts of a rule within group_wait go out as
// one notification at the first's time + group_wait (the watermark
// decides); later ones wait for group_interval after it; a group of
// MaxGroup goes at once; other rules group apart.
func TestGroupWaitAndInterval(t *testing.T) {
	var got routed
	r := got.router(t, routeDoc)
	const min = 60_000
	for i := range 3 {
		r.Alert(alert("warm", "warning", fmt.Sprintf("keg-%d", i), Firing, 10*min+int64(i)*1000))
	}
	r.Advance(10*min + 29_000)
	if len(got.notes) != 0 {
		t.Fatalf("notified before group_wait: %v", got.notes)
	}
	r.Advance(10*min + 30_000)
	if len(got.notes) != 1 || len(got.notes[0]) != 3 {
		t.Fatalf("after group_wait: %v", got.notes)
	}
	r.Alert(alert("warm", "warning", "keg-9", Firing, 11*min))
	r.Advance(14 * min)
	if len(got.notes) != 1 {
		t.Fatalf("notified before group_interval: %v", got.notes)
	}
	r.Advance(15*min + 30_000)
	if len(got.notes) != 2 || got.notes[1][0] != "FIRING keg-9 warm" {
		t.Fatalf("after group_interval: %v", got.notes)
	}
	for i := range MaxGroup {
		r.Alert(alert("offline", "critical", fmt.Sprintf("keg-%03d", i), Firing, 20*min))
	}
	if len(got.notes) != 3 || len(got.notes[2]) != MaxGroup {
		t.Fatalf("a full group did not go at once: %d notifications", len(got.notes))
	}
	if len(got.rows) != 4+MaxGroup {
		t.Fatalf("%d rows, want one per alert", len(got.rows))
	}
}

// TestInhibition: while a device's offline alert fires, its warning
// alerts are suppressed, with their RESOLVED; another device's are not;
// once offline resolves, a new warning is notified.
func TestInhibition(t *testing.T) {
	var got routed
	r := got.router(t, strings.Replace(routeDoc, "group_by: [rule]", "group_by: []", 1))
	r.Alert(alert("offline", "critical", "keg-1", Firing, 1000))
	r.Alert(alert("warm", "warning", "keg-1", Firing, 2000))
	r.Alert(alert("warm", "warning", "keg-2", Firing, 2000))
	r.Alert(alert("offline", "critical", "keg-1", Resolved, 3000))
	r.Alert(alert("warm", "warning", "keg-1", Resolved, 4000))
	w := alert("warm", "warning", "keg-1", Firing, 5000)
	w.Incident = "another"
	r.Alert(w)
	want := "FIRING keg-1 offline|SUPPRESSED keg-1 warm FIRING inhibited by rule=offline|FIRING keg-2 warm|RESOLVED keg-1 offline|SUPPRESSED keg-1 warm RESOLVED inhibited by rule=offline|FIRING keg-1 warm"
	if s := strings.Join(got.rows, "|"); s != want {
		t.Fatalf("rows\n %s\nwant\n %s", s, want)
	}
	if len(got.notes) != 4 {
		t.Fatalf("notifications %v: want the 4 not suppressed", got.notes)
	}
}

// TestSilence: a silence suppresses what it matches within its event-time
// range, and the RESOLVED of what it suppressed even after it ends.
func TestSilence(t *testing.T) {
	var got routed
	start := time.UnixMilli(10_000).UTC()
	r := got.router(t, strings.Replace(routeDoc, "group_by: [rule]", "group_by: []", 1),
		Silence{ID: "maint-1", Matchers: map[string]string{"device": "keg-1*"}, Starts: start, Ends: start.Add(time.Minute)})
	r.Alert(alert("warm", "warning", "keg-10", Firing, 9_999))  // before
	r.Alert(alert("warm", "warning", "keg-11", Firing, 10_000)) // in
	r.Alert(alert("warm", "warning", "keg-2", Firing, 10_000))  // not matched
	r.Alert(alert("warm", "warning", "keg-11", Resolved, 90_000))
	r.Alert(alert("warm", "warning", "keg-12", Firing, 70_000)) // after
	want := "FIRING keg-10 warm|SUPPRESSED keg-11 warm FIRING silenced by maint-1|FIRING keg-2 warm|SUPPRESSED keg-11 warm RESOLVED silenced by maint-1|FIRING keg-12 warm"
	if s := strings.Join(got.rows, "|"); s != want {
		t.Fatalf("rows\n %s\nwant\n %s", s, want)
	}
	if len(got.notes) != 3 {
		t.Fatalf("notifications %v", got.notes)
	}
}

// TestRouterSnapshot: a restored router sends the pending group and keeps
// inhibiting and suppressing as the original would.
func TestRouterSnapshot(t *testing.T) {
	var a, b routed
	ra := a.router(t, routeDoc, Silence{ID: "s", Matchers: map[string]string{"device": "keg-7"}, Starts: time.UnixMilli(0), Ends: time.UnixMilli(5000)})
	rb := b.router(t, routeDoc, Silence{ID: "s", Matchers: map[string]string{"device": "keg-7"}, Starts: time.UnixMilli(0), Ends: time.UnixMilli(5000)})
	steps := []*Alert{
		alert("offline", "critical", "keg-1", Firing, 1000),
		alert("warm", "warning", "keg-2", Firing, 1000),
		alert("warm", "warning", "keg-7", Firing, 2000),
		// snapshot here
		alert("warm", "warning", "keg-1", Firing, 3000),
		alert("warm", "warning", "keg-7", Resolved, 9000),
	}
	for _, s := range steps[:3] {
		cp := *s
		ra.Alert(&cp)
		cp2 := *s
		rb.Alert(&cp2)
	}
	snap := ra.AppendSnapshot(nil)
	rc := b.router(t, routeDoc)
	rc.cfg = rb.cfg
	if rest, err := rc.Restore(snap); err != nil || len(rest) != 0 {
		t.Fatalf("restore: %v, %d bytes left", err, len(rest))
	}
	if string(rc.AppendSnapshot(nil)) != string(snap) {
		t.Fatal("the restored router's snapshot differs")
	}
	for _, s := range steps[3:] {
		cp := *s
		ra.Alert(&cp)
		cp2 := *s
		rc.Alert(&cp2)
	}
	ra.Advance(60_000)
	rc.Advance(60_000)
	if fmt.Sprint(a.rows) != fmt.Sprint(b.rows) || fmt.Sprint(a.notes) != fmt.Sprint(b.notes) || len(a.notes) != 2 {
		t.Fatalf("original\n %v\n %v\nrestored\n %v\n %v", a.rows, a.notes, b.rows, b.notes)
	}
}

// TestSilenceValidate refuses what a writer of the silences prefix could
// use against a shard.
func TestSilenceValidate(t *testing.T) {
	ok := Silence{ID: "a", Matchers: map[string]string{"rule": "x"}, Starts: time.Unix(0, 0), Ends: time.Unix(60, 0)}
	for _, bad := range []func(*Silence){
		func(s *Silence) { s.ID = "../x" },
		func(s *Silence) { s.Matchers = nil },
		func(s *Silence) { s.Matchers = map[string]string{"rule": "["} },
		func(s *Silence) { s.Matchers = map[string]string{"bad name": "x"} },
		func(s *Silence) { s.Ends = s.Starts },
		func(s *Silence) { s.Ends = s.Starts.Add(400 * 24 * time.Hour) },
		func(s *Silence) { s.Comment = "a\nb" },
	} {
		s := ok
		bad(&s)
		if s.Validate() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}
