package service

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/windows/rules"
)

// maxRulesFile bounds a rules document read for a reload: a rules file is
// a few kilobytes, and whoever can write the object must not be able to
// exhaust the task's memory.
const maxRulesFile = 1 << 20

// rulesWatch follows the rules document (a file, or an S3 object named
// s3://bucket/key, or the embedded default) and the silences, and keeps
// their latest valid version for the shards, which reload it at a
// recorded point of their streams. A document that does not parse or
// does not fit the windows is refused with its file:line: field error;
// the running rules stay.
type rulesWatch struct {
	name     string
	read     func(ctx context.Context) ([]byte, error)
	silences *SilenceStore // nil: none
	check    func(*rules.Config) error
	log      *slog.Logger
	cur      atomic.Pointer[rules.Config]
	base     *rules.Config // the current rules, without silences
	bad      []byte        // the last document refused, refused once

	loaded, refused prometheus.Counter
}

// newRulesWatch returns the watch of source; load reads its first
// version.
func newRulesWatch(source string, s3cfg aws.Config, check func(*rules.Config) error, log *slog.Logger, reg prometheus.Registerer) (*rulesWatch, error) {
	w := &rulesWatch{name: source, check: check, log: log,
		loaded:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: "rules_reloads_total", Help: "New versions of the rules or the silences handed to the shards to reload."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: "rules_reload_refused_total", Help: "Rules documents refused, the running rules staying: each invalid version once, an unreadable source at every check."}),
	}
	reg.MustRegister(w.loaded, w.refused)
	if source == rules.DefaultFile {
		w.read = func(context.Context) ([]byte, error) { return rules.DefaultYAML(), nil }
		return w, nil
	}
	if rest, ok := strings.CutPrefix(source, "s3://"); ok {
		bucket, key, _ := strings.Cut(rest, "/")
		store, err := s3sink.New(s3cfg, s3sink.Options{Bucket: bucket})
		if err != nil {
			return nil, fmt.Errorf("rules_file %s: %w", source, err)
		}
		w.read = func(ctx context.Context) ([]byte, error) { return store.GetAtMost(ctx, key, maxRulesFile) }
		return w, nil
	}
	w.read = func(context.Context) ([]byte, error) {
		f, err := os.Open(source)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxRulesFile+1))
		if err == nil && len(b) > maxRulesFile {
			err = fmt.Errorf("%s: over %d bytes", source, maxRulesFile)
		}
		return b, err
	}
	return w, nil
}

// load reads, parses and checks the document, and the silences: the
// service's first rules.
func (w *rulesWatch) load(ctx context.Context) (*rules.Config, error) {
	data, err := w.read(ctx)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	name := w.name
	if name == rules.DefaultFile {
		name = "default.yml"
	}
	cfg, err := rules.Parse(name, data)
	if err == nil {
		err = w.check(cfg)
	}
	if err != nil {
		return nil, err
	}
	w.base = cfg
	if w.silences != nil {
		sil, err := w.silences.List(ctx, time.Now().Add(-silenceRetention))
		if err != nil {
			return nil, fmt.Errorf("silences: %w", err)
		}
		if cfg, err = w.withSilences(sil); err != nil {
			return nil, err
		}
	}
	w.cur.Store(cfg)
	return cfg, nil
}

// withSilences is the current rules with sil, the latest ending first if
// there are too many.
func (w *rulesWatch) withSilences(sil []rules.Silence) (*rules.Config, error) {
	if len(sil) > rules.MaxSilences {
		slices.SortFunc(sil, func(a, b rules.Silence) int { return b.Ends.Compare(a.Ends) })
		w.log.Warn("too many silences: the ones ending last are kept", "silences", len(sil), "kept", rules.MaxSilences)
		sil = sil[:rules.MaxSilences]
	}
	return w.base.WithSilences(sil)
}

// Rules returns the latest valid rules.
func (w *rulesWatch) Rules() *rules.Config { return w.cur.Load() }

// poll reads the document and the silences and, if either changed and the
// document is valid, makes them the current version.
func (w *rulesWatch) poll(ctx context.Context) {
	data, err := w.read(ctx)
	if err != nil {
		w.refused.Inc()
		w.log.Error("rules reload: cannot read the rules; the running rules stay", "rules_file", w.name, "err", err)
		return
	}
	if !bytes.Equal(data, w.base.Source) && !bytes.Equal(data, w.bad) {
		cfg, err := rules.Parse(w.name, data)
		if err == nil {
			err = w.check(cfg)
		}
		if err != nil {
			w.bad = data
			w.refused.Inc()
			w.log.Error("rules reload refused; the running rules stay", "rules_file", w.name, "err", err)
		} else {
			w.base = cfg
		}
	}
	cur := w.cur.Load()
	next := w.base
	if w.silences != nil {
		sil, err := w.silences.List(ctx, time.Now().Add(-silenceRetention))
		if err != nil {
			w.log.Error("cannot read the silences; the last ones read stay", "err", err)
			sil = cur.Silences
		}
		if next, err = w.withSilences(sil); err != nil {
			w.log.Error("silences refused; the last ones read stay", "err", err)
			return
		}
	}
	if next.Same(cur) {
		return
	}
	w.cur.Store(next)
	w.loaded.Inc()
	w.log.Info("rules or silences changed: each shard reloads them after its next batch", "rules_file", w.name, "rules", len(next.Rules), "silences", len(next.Silences))
}

// run polls every interval (0: never) and on each value of hup, until
// ctx ends.
func (w *rulesWatch) run(ctx context.Context, every time.Duration, hup <-chan os.Signal) {
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-hup:
		}
		w.poll(ctx)
	}
}
