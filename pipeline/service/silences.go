package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/windows/rules"
)

// Silences are stored as immutable objects under layout.Silences: a
// silence is written once ({id}.json, put-if-absent) and expired early by
// a second object ({id}.expire, holding the time), so the service reads
// each object once and a writer cannot rewrite another's silence.

// silenceRetention is how long after its end a silence is still handed to
// the shards: a backlog of that age replays under the silences of its
// time.
const silenceRetention = 7 * 24 * time.Hour

// maxSilenceObject bounds a silence object: whoever can write the prefix
// must not be able to exhaust the task's memory.
const maxSilenceObject = 8 << 10

// SilenceStore reads and writes an application's silences.
type SilenceStore struct {
	store  *s3sink.Store
	dir    string
	cache  map[string]rules.Silence // by key, valid ones
	bad    map[string]bool          // keys refused, refused once
	log    *slog.Logger
	refuse prometheus.Counter
}

// NewSilenceStore returns the silences of app under prefix in store.
func NewSilenceStore(store *s3sink.Store, prefix, app string, log *slog.Logger, reg prometheus.Registerer) *SilenceStore {
	s := &SilenceStore{store: store, dir: layout.Silences(prefix, app), cache: map[string]rules.Silence{}, bad: map[string]bool{}, log: log,
		refuse: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: "silences_refused_total", Help: "Silence objects refused as invalid (each once)."})}
	reg.MustRegister(s.refuse)
	return s
}

// Add stores a new silence, giving it an id, and returns it.
func (s *SilenceStore) Add(ctx context.Context, sil rules.Silence) (rules.Silence, error) {
	var b [6]byte
	rand.Read(b[:])
	sil.ID = "s-" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(b[:])
	sil.Starts, sil.Ends = sil.Starts.UTC(), sil.Ends.UTC()
	if err := sil.Validate(); err != nil {
		return sil, err
	}
	data, err := json.Marshal(sil)
	if err != nil {
		return sil, err
	}
	if _, err := s.store.Put(ctx, s.dir+sil.ID+".json", data); err != nil {
		return sil, err
	}
	return sil, nil
}

// Expire ends silence id at t (now, normally), if it ends later.
func (s *SilenceStore) Expire(ctx context.Context, id string, t time.Time) error {
	all, err := s.List(ctx, time.Time{})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(all, func(x rules.Silence) bool { return x.ID == id })
	switch {
	case i < 0:
		return fmt.Errorf("silence %q: no such silence", id)
	case !all[i].Ends.After(t):
		return fmt.Errorf("silence %q: already ended at %s", id, all[i].Ends.Format(time.RFC3339))
	}
	wrote, err := s.store.Put(ctx, s.dir+id+".expire", []byte(t.UTC().Format(time.RFC3339Nano)))
	if err == nil && !wrote {
		err = fmt.Errorf("silence %q: already expired", id)
	}
	return err
}

// List returns the silences ending after since (zero: all), expirations
// applied, sorted by id. Invalid objects are logged, counted and left out.
func (s *SilenceStore) List(ctx context.Context, since time.Time) ([]rules.Silence, error) {
	keys, err := s.store.List(ctx, s.dir)
	if err != nil {
		return nil, err
	}
	expire := map[string]time.Time{}
	var out []rules.Silence
	for _, k := range keys {
		name := strings.TrimPrefix(k, s.dir)
		id, isExpire := strings.CutSuffix(name, ".expire")
		if !isExpire && !strings.HasSuffix(name, ".json") || s.bad[k] {
			continue
		}
		sil, cached := s.cache[k]
		if !cached {
			b, err := s.store.GetAtMost(ctx, k, maxSilenceObject)
			if errors.Is(err, s3sink.ErrTooLarge) {
				s.refused(k, err)
				continue
			}
			if err != nil {
				return nil, err
			}
			if isExpire {
				t, err := time.Parse(time.RFC3339Nano, string(b))
				if err != nil {
					s.refused(k, fmt.Errorf("not a time: %w", err))
					continue
				}
				sil = rules.Silence{ID: id, Ends: t}
			} else {
				dec := json.NewDecoder(strings.NewReader(string(b)))
				dec.DisallowUnknownFields()
				err := dec.Decode(&sil)
				if err == nil {
					err = sil.Validate()
				}
				if err == nil && sil.ID+".json" != name {
					err = fmt.Errorf("id %q under another name", sil.ID)
				}
				if err != nil {
					s.refused(k, err)
					continue
				}
			}
			s.cache[k] = sil
		}
		if isExpire {
			expire[id] = sil.Ends
		} else {
			out = append(out, sil)
		}
	}
	kept := out[:0]
	for _, sil := range out {
		if t, ok := expire[sil.ID]; ok && t.Before(sil.Ends) {
			sil.Ends = t
			if !sil.Ends.After(sil.Starts) { // expired before it started
				continue
			}
		}
		if sil.Ends.After(since) {
			kept = append(kept, sil)
		}
	}
	slices.SortFunc(kept, func(a, b rules.Silence) int { return strings.Compare(a.ID, b.ID) })
	return kept, nil
}

func (s *SilenceStore) refused(key string, err error) {
	s.bad[key] = true
	s.refuse.Inc()
	s.log.Error("silence refused", "key", key, "err", err)
}

// OpenSilences returns the silence store of the service configured by c,
// for `tapline silence`: S3 read, list and put under the prefix.
func OpenSilences(ctx context.Context, c Config) (*SilenceStore, error) {
	with, err := awsConfigs(ctx, c)
	if err != nil {
		return nil, err
	}
	store, err := s3sink.New(with(c.Endpoints.S3), s3sink.Options{Bucket: c.S3.Bucket})
	if err != nil {
		return nil, err
	}
	return NewSilenceStore(store, c.S3.Prefix, c.App, slog.Default(), prometheus.NewRegistry()), nil
}
