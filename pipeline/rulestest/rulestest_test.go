package rulestest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// shipped are the rule files' tests that ship with tapline.
var shipped = []string{"../../cmd/internal/demo/rules_test.yml", "../../windows/rules/default_test.yml"}

// TestShippedRules runs the unit tests of the rule files tapline ships.
func TestShippedRules(t *testing.T) {
	for _, f := range shipped {
		res, err := RunFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Failure != "" {
				t.Errorf("%s: %s:\n%s", f, r.Name, r.Failure)
			}
		}
	}
}

// TestFailureNamesWhatDiffers: a wrong expectation fails with the
// missing and the unexpected alert each on its line, and the alerts
// raised.
func TestFailureNamesWhatDiffers(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yml"), []byte("rules:\n  - {name: hot, kind: threshold, metric: t, window: 1m, above: 5}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "r_test.yml"), []byte(`rules: r.yml
tests:
  - name: off by a minute
    input:
      - {device: d-1, metrics: {t: "1 1 9 9 1"}}
    expect:
      - {at: 4m, state: FIRING, rule: hot, device: d-1}
      - {at: 5m, state: RESOLVED, rule: hot, device: d-1}
`), 0o644)
	res, err := RunFile(filepath.Join(dir, "r_test.yml"))
	if err != nil || len(res) != 1 {
		t.Fatal(res, err)
	}
	want := []string{"missing:    4m0s FIRING hot d-1", "unexpected: 3m0s FIRING hot d-1 t", "raised:"}
	for _, w := range want {
		if !strings.Contains(res[0].Failure, w) {
			t.Errorf("failure lacks %q:\n%s", w, res[0].Failure)
		}
	}
	if strings.Contains(res[0].Failure, "missing:    5m0s") {
		t.Errorf("the matching RESOLVED is reported missing:\n%s", res[0].Failure)
	}
}

// TestRoutine: with routine: 24h, a spike at 03:00 every day is notified
// the first day and suppressed after; one at another hour is notified,
// and so is the 03:00 that follows it by 22 hours. Without routine every
// spike is notified.
func TestRoutine(t *testing.T) {
	dir := t.TempDir()
	day := "1 1 1 9 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"
	other := "1 1 1 9 1 9 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"
	input := day + " " + day + " " + other + " " + day
	for _, c := range []struct{ routine, want string }{
		{"routine: 24h, ", "4h FIRING|5h RESOLVED|28h SUPPRESSED|29h SUPPRESSED|52h SUPPRESSED|53h SUPPRESSED|54h FIRING|55h RESOLVED|76h FIRING|77h RESOLVED"},
		{"", "4h FIRING|5h RESOLVED|28h FIRING|29h RESOLVED|52h FIRING|53h RESOLVED|54h FIRING|55h RESOLVED|76h FIRING|77h RESOLVED"},
	} {
		os.WriteFile(filepath.Join(dir, "r.yml"), []byte("rules:\n  - {name: hot, kind: threshold, metric: t, window: 1h, above: 5, "+c.routine+"severity: warning}\n"), 0o644)
		var expect []string
		for _, e := range strings.Split(c.want, "|") {
			at, state, _ := strings.Cut(e, " ")
			expect = append(expect, "      - {at: "+at+", state: "+state+", rule: hot, device: d-1}")
		}
		os.WriteFile(filepath.Join(dir, "r_test.yml"), []byte("rules: r.yml\ntests:\n  - name: daily spikes\n    interval: 1h\n    input:\n      - {device: d-1, metrics: {t: \""+input+"\"}}\n    expect:\n"+strings.Join(expect, "\n")+"\n"), 0o644)
		res, err := RunFile(filepath.Join(dir, "r_test.yml"))
		if err != nil || len(res) != 1 {
			t.Fatal(res, err)
		}
		if res[0].Failure != "" {
			t.Errorf("%q: %s", c.routine, res[0].Failure)
		}
	}
}

func TestExpandValues(t *testing.T) {
	for in, want := range map[string]string{
		"1 2 _ 3":         "1 2 _ 3",
		"5x3":             "5 5 5",
		"1+2x3":           "1 3 5 7",
		"10-1.5x2":        "10 8.5 7",
		"-1+1x2":          "-1 0 1",
		"1e-3x2 -4":       "0.001 0.001 -4",
		"(1 2)x2 3":       "1 2 1 2 3",
		"((1 2)x2 3x2)x2": "1 2 1 2 3 3 1 2 1 2 3 3",
	} {
		vals, err := ExpandValues(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		var got []string
		for _, v := range vals {
			if v == nil {
				got = append(got, "_")
			} else {
				got = append(got, fmtG(*v))
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%q: %v, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "a", "1x0", "1xa", "1+ax2", "1x1000001", "(1 2)x0", "(1 2", "(((1 2 3 4 5 6 7 8)x1000)x1000)x1000"} {
		if _, err := ExpandValues(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func fmtG(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
