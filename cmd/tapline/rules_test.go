package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesTestCommand: `tapline rules test` passes the shipped rule
// tests, and a failing test exits non-zero naming what differed.
func TestRulesTestCommand(t *testing.T) {
	bin := binary(t, ".")
	out, err := exec.Command(bin, "rules", "test", "../internal/demo/rules_test.yml", "../../windows/rules/default_test.yml").CombinedOutput()
	if err != nil || strings.Count(string(out), "PASS ") < 6 || strings.Contains(string(out), "FAIL") {
		t.Fatalf("shipped tests: %v\n%s", err, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yml"), []byte("rules:\n  - {name: hot, kind: threshold, metric: t, window: 1m, above: 5}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "r_test.yml"), []byte("rules: r.yml\ntests:\n  - name: never fires\n    input:\n      - {device: d-1, metrics: {t: \"1 9 1\"}}\n    expect: []\n"), 0o644)
	out, err = exec.Command(bin, "rules", "test", filepath.Join(dir, "r_test.yml")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FAIL") || !strings.Contains(string(out), "unexpected: 2m0s FIRING hot d-1 t") {
		t.Fatalf("failing test: %v\n%s", err, out)
	}
}
