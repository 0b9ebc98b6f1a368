package rules

import (
	"testing"
	"unsafe"
)

// TestDefaultSet: the embedded default rules load, run against the
// windows AddDefaultWindows adds, and keep a series' state within
// issue 15's 4 KiB (detector state plus the engine's per-rule state).
func TestDefaultSet(t *testing.T) {
	cfg := Default()
	if len(cfg.Rules) == 0 {
		t.Fatal("no default rules")
	}
	specs := AddDefaultWindows(nil)
	if _, err := NewEngine(cfg, specs, false, func(*Alert) {}); err != nil {
		t.Fatal(err)
	}
	if again := AddDefaultWindows(specs); len(again) != len(specs) {
		t.Fatalf("windows added twice: %v", again)
	}
	total := int(unsafe.Sizeof(seriesRules{}))
	for _, r := range cfg.Rules {
		d := r.newDetector(&specs[specIndex(specs, r.Window)], 1)
		if d == nil {
			t.Fatalf("rule %s (%s) has no detector", r.Name, r.Kind)
		}
		total += int(unsafe.Sizeof(ruleState{})) + d.Size()
	}
	t.Logf("default set: %d bytes of rule state per series", total)
	if total > 4096 {
		t.Fatalf("default set keeps %d bytes per series, over 4 KiB", total)
	}
	if c, _ := LoadOrDefault(DefaultFile); c != cfg {
		t.Fatal("LoadOrDefault(default) is not the default set")
	}
	if _, err := LoadOrDefault("testdata/kegs.good.yml"); err != nil {
		t.Fatal(err)
	}
}
