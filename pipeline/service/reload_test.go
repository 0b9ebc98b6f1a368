package service

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/windows"
)

// TestRulesWatchFile: the file is polled; a new valid version replaces
// the rules, an invalid one (YAML, a field, a window not configured, too
// large) is refused with its location and counted, and the last valid
// version stays.
func TestRulesWatchFile(t *testing.T) {
	spec, _ := windows.ParseSpec("1m")
	opts := pipeline.Options{Windows: windows.Options{Specs: []windows.Spec{spec}}}
	file := filepath.Join(t.TempDir(), "rules.yml")
	write := func(doc string) { // atomically, as a deploy tool would: a poll must not see half a file
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n  - {name: hot, kind: threshold, metric: t, window: 1m, above: 5}\n")
	logs := &lockedBuffer{}
	w, err := newRulesWatch(file, aws.Config{}, opts.CheckRules, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.load(context.Background())
	if err != nil || w.Rules() != first {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx, 10*time.Millisecond, nil)
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s; log:\n%s", what, logs.String())
			}
		}
	}
	for i, bad := range []struct{ doc, err string }{
		{"rules: [", "rules.yml: yaml"},
		{"rules:\n  - {name: hot, kind: threshold, metric: t, window: 1m, above: x}\n", `rules.yml:2: rule "hot": field "above"`},
		{"rules:\n  - {name: hot, kind: threshold, metric: t, window: 5m, above: 5}\n", `no window spec named "5m"`},
		{"rules: []\n" + strings.Repeat("#", maxRulesFile), "over 1048576 bytes"},
	} {
		write(bad.doc)
		// Counted, and logged with its location (the log line may follow
		// the count by a moment).
		wait("refused "+bad.err, func() bool {
			return testutil.ToFloat64(w.refused) >= float64(i+1) && strings.Contains(strings.ReplaceAll(logs.String(), `\"`, `"`), bad.err)
		})
		if w.Rules() != first {
			t.Fatalf("%q replaced the running rules", bad.doc)
		}
	}
	write("rules:\n  - {name: hot, kind: threshold, metric: t, window: 1m, above: 6}\n")
	wait("the valid version loaded", func() bool { return w.Rules() != first })
	if *w.Rules().Rules[0].Above != 6 || testutil.ToFloat64(w.loaded) != 1 {
		t.Fatalf("loaded %v, %v loads", *w.Rules().Rules[0].Above, testutil.ToFloat64(w.loaded))
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
