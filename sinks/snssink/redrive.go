package snssink

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/aws/smithy-go"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/windows/rules"
)

// RedriveStore is what Redrive needs of the bucket; s3sink.Store is one.
// Get reports a missing key with an error wrapping s3sink.ErrNotFound;
// GetAtMost refuses an object larger than max without reading it.
type RedriveStore interface {
	Store
	Get(ctx context.Context, key string) ([]byte, error)
	GetAtMost(ctx context.Context, key string, max int64) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
}

// RedriveOptions say which dead-lettered alerts Redrive considers.
type RedriveOptions struct {
	Prefix string    // the service's key prefix
	Since  time.Time // only alerts of event time since or later; zero: all
	// Rules are the service's rules: an alert whose rule, kind, severity
	// or window is not one of them was not raised by the service and is
	// refused. Required.
	Rules *rules.Config
}

// maxDeadAlert bounds a dead-lettered alert object (one JSON line, a few
// hundred bytes when the service writes it).
const maxDeadAlert = 512 << 10

// RedriveReport says what Redrive did.
type RedriveReport struct {
	Found   int     // dead-lettered alerts under the prefix
	Sent    int     // published now
	Already int     // redriven by an earlier run: not sent again
	Refused []error // objects that are not the service's alerts, or that SNS refused, one error each
}

// redriveMarks is where Redrive marks the alerts it sent, outside the
// dead-letter dataset (an Athena table reads every object under its
// location).
const redriveMarks = "_redriven"

// Redrive publishes the alerts dead-lettered under prefix (DeadLetterTo)
// because SNS refused them or the queue was full: oldest first by event
// time, FIRING before RESOLVED at the same time, in the same message form
// as when they were raised. Each one sent is marked under
// {prefix}/_redriven/ so a later run does not send it again; the object
// itself stays (the service cannot delete). A crash between a publish and
// its mark sends that alert once more on the next run, with the same
// alert id, from which the command Lambda derives the same command id.
//
// With since set, only the hourly partitions from since's hour on are
// listed (alerts are filed by event time): a bucket that keeps millions
// of record dead letters is not listed whole.
//
// Anyone who can write under the prefix can plant an object there, so
// every object is checked before anything is sent: at most 64 KiB, one
// dead-lettered alert signed with the publisher's MAC key (when it has
// one: the service's objects are), whose message passes
// schemas.AlertMessage.Validate,
// whose rule, kind, severity and window are the configured rules', and
// whose key is the one DeadLetterTo derives from it. An object that fails
// is refused and reported, never published. An alert SNS refuses as
// malformed is reported and skipped; any other publish error (SNS down)
// stops the run, and the rest keep their order for the next one.
func (p *Publisher) Redrive(ctx context.Context, store RedriveStore, o RedriveOptions) (RedriveReport, error) {
	var rep RedriveReport
	if o.Rules == nil {
		return rep, errors.New("snssink: redrive needs the service's rules to check the alerts against")
	}
	prefix, since := o.Prefix, o.Since
	dir := func(partition string) string { return layout.Under(prefix, partition+"/") }
	var keys []string
	if since.IsZero() {
		all, err := store.List(ctx, dir(layout.DeadLetter))
		if err != nil {
			return rep, err
		}
		keys = all
	}
	// Up to an hour past now: event times may run a little ahead.
	for h := since.Truncate(time.Hour); !since.IsZero() && h.Before(time.Now().Add(time.Hour)); h = h.Add(time.Hour) {
		hour, err := store.List(ctx, dir(layout.Partition(layout.DeadLetter, h.UnixMilli())))
		if err != nil {
			return rep, err
		}
		keys = append(keys, hour...)
	}
	type pending struct {
		key   string
		alert *rules.Alert
	}
	var todo []pending
	for _, key := range keys {
		if !strings.HasPrefix(path.Base(key), "alert-") {
			continue // a record's dead letters
		}
		rep.Found++
		a, err := readDeadAlert(ctx, store, prefix, key, o.Rules, p.opts.MACKey)
		if err != nil {
			rep.Refused = append(rep.Refused, err)
			continue
		}
		todo = append(todo, pending{key, a})
	}
	slices.SortStableFunc(todo, func(x, y pending) int {
		if c := cmp.Compare(x.alert.At, y.alert.At); c != 0 {
			return c
		}
		return cmp.Compare(stateOrder(x.alert.State), stateOrder(y.alert.State))
	})
	for _, t := range todo {
		mark := markKey(prefix, t.key)
		switch _, err := store.Get(ctx, mark); {
		case err == nil:
			rep.Already++
			continue
		case !errors.Is(err, s3sink.ErrNotFound):
			return rep, fmt.Errorf("snssink: redrive %q: %w", t.key, err)
		}
		in, err := Input(t.alert, p.opts.TopicARN, p.opts.MACKey)
		if err == nil {
			_, err = p.client.Publish(ctx, in)
		}
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorFault() == smithy.FaultClient {
			rep.Refused = append(rep.Refused, fmt.Errorf("%q: SNS refused alert %q: %w", t.key, t.alert.ID, err))
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("snssink: redrive alert %q (%q): %w", t.alert.ID, t.key, err)
		}
		p.Sent.Add(1)
		rep.Sent++
		if _, err := store.Put(ctx, mark, []byte(time.Now().UTC().Format(time.RFC3339)+" "+t.key+"\n")); err != nil {
			return rep, fmt.Errorf("snssink: alert %q published, but not marked as redriven (a next run sends it again): %w", t.alert.ID, err)
		}
	}
	return rep, nil
}

func stateOrder(s rules.State) int {
	if s == rules.Firing {
		return 0
	}
	return 1
}

// markKey is the key of the mark of the dead letter at key.
func markKey(prefix, key string) string {
	return layout.Under(prefix, redriveMarks+"/"+strings.TrimSuffix(path.Base(key), ".jsonl"))
}

// readDeadAlert reads and checks one dead-lettered alert.
func readDeadAlert(ctx context.Context, store RedriveStore, prefix, key string, rs *rules.Config, macKey []byte) (*rules.Alert, error) {
	b, err := store.GetAtMost(ctx, key, maxDeadAlert)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", key, err)
	}
	var line deadAlert
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&line); err != nil {
		return nil, fmt.Errorf("%q: not a dead-lettered alert: %v", key, err)
	}
	if line.Reason != reasonNotPublished {
		return nil, fmt.Errorf("%q: not a dead-lettered alert: reason %q", key, line.Reason)
	}
	if macKey != nil {
		if err := line.Alert.Verify(macKey); err != nil {
			return nil, fmt.Errorf("%q: %w", key, err)
		}
	}
	a, err := fromMessage(line.Alert, rs)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", key, err)
	}
	// The key is derived from the alert: one that does not match was not
	// written by DeadLetterTo.
	if want, err := layout.AlertDeadLetterKey(prefix, a.At, a.ID, string(a.State)); err != nil || want != key {
		return nil, fmt.Errorf("%q: the alert inside (%q %q) belongs under another key", key, a.ID, a.State)
	}
	return a, nil
}

// fromMessage is the inverse of rules.Alert.AlertMessage, with the checks an alert from
// storage needs before it reaches SNS and the command Lambda.
func fromMessage(j schemas.AlertMessage, rs *rules.Config) (*rules.Alert, error) {
	if err := j.Validate(); err != nil {
		return nil, err
	}
	if r := rs.Rule(j.Rule); r == nil || r.Kind.String() != j.Kind || r.Severity != j.Severity || r.Window != j.Window {
		return nil, fmt.Errorf("rule %q (%q, %q, window %q) is not one of the service's rules", j.Rule, j.Kind, j.Severity, j.Window)
	}
	a := &rules.Alert{ID: j.ID, Incident: j.Incident, State: j.State, Rule: j.Rule, Kind: j.Kind, Severity: j.Severity,
		Device: j.Device, Metric: j.Metric, Window: j.Window, Value: j.Value, Threshold: j.Threshold, Message: j.Message}
	for _, t := range []struct {
		s   string
		dst *int64
	}{{j.Start, &a.Start}, {j.End, &a.End}, {j.At, &a.At}} {
		tm, err := time.Parse(time.RFC3339Nano, t.s)
		if err != nil {
			return nil, fmt.Errorf("time %q: %v", t.s, err)
		}
		*t.dst = tm.UnixMilli()
	}
	for i := range j.Group { // a grouped notification: Validate bounded it
		g, err := fromMessage(j.Group[i], rs)
		if err != nil {
			return nil, fmt.Errorf("group[%d]: %v", i, err)
		}
		a.Group = append(a.Group, *g)
	}
	return a, nil
}
