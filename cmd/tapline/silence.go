package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tapline/tapline/pipeline/service"
	"github.com/tapline/tapline/windows/rules"
)

const silenceUsage = `usage:
  tapline silence add -match LABEL=GLOB [-match ...] (-for DURATION | -until TIME) [-start TIME] -comment TEXT [-by NAME]
  tapline silence list [-all]
  tapline silence expire ID

A silence suppresses the alerts it matches whose event time lies in its
range: they stay in the alerts dataset as SUPPRESSED and are not sent to
SNS (so no command either). Labels: rule, severity, kind, device, metric,
window, state and the rules' own labels; globs as in path.Match
(keg-00*). Times are RFC 3339. Silences are objects under the service's
S3 prefix; the service reads them every rules_reload and on SIGHUP, and
each shard applies them at a recorded point of its stream. Run it with
the service's configuration (-config, TAPLINE_* variables).`

// matchFlags collects -match LABEL=GLOB.
type matchFlags map[string]string

func (m matchFlags) String() string { return fmt.Sprint(map[string]string(m)) }

func (m matchFlags) Set(v string) error {
	k, glob, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not LABEL=GLOB", v)
	}
	m[k] = glob
	return nil
}

func runSilence(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, silenceUsage)
		return errors.New("silence: add, list or expire?")
	}
	fs := flag.NewFlagSet("tapline silence "+args[0], flag.ContinueOnError)
	match := matchFlags{}
	var start, until string
	var dur time.Duration
	var comment, by string
	var all bool
	switch args[0] {
	case "add":
		fs.Var(match, "match", "LABEL=GLOB an alert must match (repeat for several)")
		fs.StringVar(&start, "start", "", "when it starts, RFC 3339 (default: now)")
		fs.StringVar(&until, "until", "", "when it ends, RFC 3339")
		fs.DurationVar(&dur, "for", 0, "how long it lasts from its start")
		fs.StringVar(&comment, "comment", "", "why (required)")
		name := os.Getenv("USER")
		if u, err := user.Current(); err == nil && name == "" {
			name = u.Username
		}
		fs.StringVar(&by, "by", name, "who")
	case "list":
		fs.BoolVar(&all, "all", false, "include the silences that ended")
	case "expire":
	default:
		fmt.Fprintln(os.Stderr, silenceUsage)
		return fmt.Errorf("silence: unknown subcommand %q", args[0])
	}
	c, err := parseServiceFlags(fs, args[1:], silenceUsage)
	if err != nil {
		return err
	}
	store, err := service.OpenSilences(ctx, c)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	switch args[0] {
	case "add":
		s := rules.Silence{Matchers: match, Starts: now, Comment: comment, CreatedBy: by}
		if start != "" {
			if s.Starts, err = time.Parse(time.RFC3339, start); err != nil {
				return fmt.Errorf("-start: %w", err)
			}
		}
		switch {
		case until != "" && dur != 0, until == "" && dur == 0:
			return errors.New("silence add: one of -for or -until is required")
		case until != "":
			if s.Ends, err = time.Parse(time.RFC3339, until); err != nil {
				return fmt.Errorf("-until: %w", err)
			}
		default:
			s.Ends = s.Starts.Add(dur)
		}
		if comment == "" {
			return errors.New("silence add: -comment is required: say why")
		}
		if s, err = store.Add(ctx, s); err != nil {
			return err
		}
		fmt.Fprintln(out, s.ID)
		return nil
	case "list":
		since := now
		if all {
			since = time.Time{}
		}
		list, err := store.List(ctx, since)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTARTS\tENDS\tMATCHERS\tBY\tCOMMENT")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Starts.Format(time.RFC3339), s.Ends.Format(time.RFC3339),
				matchers(s.Matchers), s.CreatedBy, s.Comment)
		}
		return tw.Flush()
	default: // expire
		if fs.NArg() != 1 {
			return errors.New("usage: tapline silence expire ID")
		}
		if err := store.Expire(ctx, fs.Arg(0), now); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s expired at %s\n", fs.Arg(0), now.Format(time.RFC3339))
		return nil
	}
}

func matchers(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
