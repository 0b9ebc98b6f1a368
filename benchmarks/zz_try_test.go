package benchmarks

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tapline/tapline/windows/rules"
)

func TestZZTry(t *testing.T) {
	files := strings.Fields(os.Getenv("ZZ_SETS"))
	var sets []ruleSet
	for _, f := range files {
		cfg, err := rules.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, ruleSet{f, cfg})
	}
	sets = append(sets, ruleSet{"default", rules.Default()})
	readings, labels := injectedReadings()
	scores := replaySets(t, readings, labels, sets)
	for i, s := range sets {
		byKind := map[string]int{}
		for _, ss := range scores[i].Series {
			for _, k := range injectedKinds {
				if strings.HasSuffix(ss.Device, "-"+k.name) {
					byKind[k.name] += ss.Detected
				}
			}
		}
		fmt.Printf("injected %s: %d/%d FA %d (%.2f) %v\n", s.name, scores[i].Detected, scores[i].Windows, scores[i].FalseAlarms, scores[i].PerWeek(), byKind)
	}
	var clean []ruleSet
	clean = append(clean, sets...)
	cr := cleanReadings()
	cs := replaySets(t, cr, nil, clean)
	for i, s := range clean {
		fmt.Printf("clean %s: FA %d\n", s.name, cs[i].FalseAlarms)
	}
}
