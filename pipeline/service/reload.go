package service

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
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
// s3://bucket/key) and keeps its latest valid version for the shards,
// which reload it at a recorded point of their streams. A document that
// does not parse or does not fit the windows is refused with its
// file:line: field error; the running rules stay.
type rulesWatch struct {
	name  string
	read  func(ctx context.Context) ([]byte, error)
	check func(*rules.Config) error
	log   *slog.Logger
	cur   atomic.Pointer[rules.Config]
	bad   []byte // the last document refused, refused once

	loaded, refused prometheus.Counter
}

// newRulesWatch returns the watch of source; load reads its first
// version.
func newRulesWatch(source string, s3cfg aws.Config, check func(*rules.Config) error, log *slog.Logger, reg prometheus.Registerer) (*rulesWatch, error) {
	w := &rulesWatch{name: source, check: check, log: log,
		loaded:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: "rules_reloads_total", Help: "New rules documents loaded for the shards to reload."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: "rules_reload_refused_total", Help: "Rules documents refused, the running rules staying: each invalid version once, an unreadable source at every check."}),
	}
	reg.MustRegister(w.loaded, w.refused)
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

// load reads, parses and checks the document: the service's first rules.
func (w *rulesWatch) load(ctx context.Context) (*rules.Config, error) {
	data, err := w.read(ctx)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	cfg, err := rules.Parse(w.name, data)
	if err == nil {
		err = w.check(cfg)
	}
	if err != nil {
		return nil, err
	}
	w.cur.Store(cfg)
	return cfg, nil
}

// Rules returns the latest valid rules.
func (w *rulesWatch) Rules() *rules.Config { return w.cur.Load() }

// poll reads the document and, if it changed and is valid, makes it the
// current version.
func (w *rulesWatch) poll(ctx context.Context) {
	data, err := w.read(ctx)
	if err != nil {
		w.refused.Inc()
		w.log.Error("rules reload: cannot read the rules; the running rules stay", "rules_file", w.name, "err", err)
		return
	}
	if bytes.Equal(data, w.cur.Load().Source) || bytes.Equal(data, w.bad) {
		return
	}
	cfg, err := rules.Parse(w.name, data)
	if err == nil {
		err = w.check(cfg)
	}
	if err != nil {
		w.bad = data
		w.refused.Inc()
		w.log.Error("rules reload refused; the running rules stay", "rules_file", w.name, "err", err)
		return
	}
	w.cur.Store(cfg)
	w.loaded.Inc()
	w.log.Info("rules loaded: each shard reloads them after its next batch", "rules_file", w.name, "rules", len(cfg.Rules))
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
