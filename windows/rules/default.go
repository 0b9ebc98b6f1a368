package rules

import (
	_ "embed"
	"slices"
	"sync"

	"github.com/tapline/tapline/windows"
)

//go:embed default.yml
var defaultYAML []byte

// DefaultFile is the name rules files use for the embedded default set
// (rules_file: default, tapline backtest -rules default).
const DefaultFile = "default"

// DefaultWindows are the window specs the default rules read.
var DefaultWindows = []string{"1h"}

var defaultOnce = sync.OnceValues(func() (*Config, error) { return Parse("default.yml", defaultYAML) })

// Default returns the default rule set: robust, seasonal, CUSUM and
// stuck-value detectors on hourly windows of every metric, for signals nobody has
// tuned yet (default.yml; measured in benchmarks/DETECTION.md). The
// Config is shared: do not modify it.
func Default() *Config {
	cfg, err := defaultOnce()
	if err != nil {
		panic(err) // default.yml is tested
	}
	return cfg
}

// DefaultYAML returns the default rule set's source, to start a rules
// file from.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// LoadOrDefault loads a rules file, or the default set for DefaultFile.
func LoadOrDefault(file string) (*Config, error) {
	if file == DefaultFile {
		return Default(), nil
	}
	return Load(file)
}

// AddDefaultWindows returns specs with the default rules' windows added
// where no spec of the same name is configured.
func AddDefaultWindows(specs []windows.Spec) []windows.Spec {
	for _, name := range DefaultWindows {
		if slices.ContainsFunc(specs, func(s windows.Spec) bool { return s.Name == name }) {
			continue
		}
		sp, err := windows.ParseSpec(name)
		if err != nil {
			panic(err)
		}
		specs = append(specs, sp)
	}
	return specs
}
