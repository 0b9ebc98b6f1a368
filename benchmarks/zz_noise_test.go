package benchmarks

import (
	"testing"

	"github.com/tapline/tapline/windows/rules"
)

func TestZZNoise(t *testing.T) {
	sets := []ruleSet{{"default", rules.Default()}}
	for _, f := range []string{"/tmp/n48.yml", "/tmp/n72.yml", "/tmp/na48.yml", "/tmp/n48b.yml"} {
		cfg, err := rules.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, ruleSet{f, cfg})
	}
	clean := replaySets(t, cleanReadings(), nil, sets)
	inj, labels := injectedReadings()
	injected := replaySets(t, inj, labels, sets)
	for i, s := range sets {
		t.Logf("%-16s clean %d FA (%.2f/wk); injected %d/%d found, %d FA (%.2f/wk)", s.name, clean[i].FalseAlarms, clean[i].PerWeek(),
			injected[i].Detected, injected[i].Windows, injected[i].FalseAlarms, injected[i].PerWeek())
	}
}
