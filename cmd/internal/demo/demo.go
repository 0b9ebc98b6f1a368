// Package demo runs tapline's shard loop on a simulated keg fleet: the
// embedded default behind `tapline demo`. It needs no AWS account: records
// come from package fleet, dead letters go to a local JSONL file, and
// alerts are printed as they fire.
package demo

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tapline/tapline/cmd/internal/fleet"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/command"
	"github.com/tapline/tapline/sinks/deadletter"
	"github.com/tapline/tapline/sinks/live"
	"github.com/tapline/tapline/sinks/localdir"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

//go:embed rules.yml
var defaultRules []byte

// Options configure a demo run.
type Options struct {
	Devices   int
	Duration  time.Duration // simulated event time
	Speed     float64       // simulated seconds per real second; 0 runs unpaced
	Seed      uint64
	RulesFile string // empty: the embedded rules
	OutDir    string // Parquet and dead letters go under OutDir
	Out       io.Writer
	Live      bool // redraw one progress line (a terminal) instead of printing lines
	// Serve, if set, serves the live dashboard on this address
	// (host:port) while the demo runs, and after it until ctx is done;
	// Ready is called with the page's URL once it is up.
	Serve string
	Ready func(url string)
	// WaitForPage, with Serve, starts the simulation once a page has
	// subscribed, so it shows everything from the first record.
	WaitForPage bool
	// onServe, for tests, gets the server.
	onServe func(*dashServer)
	// Batch > 1: kegs send Batch readings a message. Alerts then come
	// later (a window closes when the batch holding its end arrives), so
	// commands do, and the closed loop's story changes with it.
	Batch int
}

// Summary is what a run produced. Everything except Elapsed and LoopRate
// is a deterministic function of the options.
type Summary struct {
	Records, Accepted uint64
	Rejected          map[string]uint64
	Windows           uint64
	Alerts            []string // one line per alert, in order
	Story             []string // the loop closing: alert -> command -> keg -> resolution
	Commands          int      // commands the kegs applied
	Fired, Resolved   uint64
	DeadLetterFile    string
	Files             int    // Parquet files written
	FilesExisting     int    // files already there from an earlier run with the same seed
	Query             string // a DuckDB command over the windows written
	Elapsed           time.Duration
	LoopRate          float64 // readings per second of time spent in Process
}

// The fleet's faults, as (kind, keg index, start); indexes wrap around
// small fleets.
var faults = []fleet.Fault{
	{Kind: fleet.Leak, Device: 6, From: 20 * time.Minute},
	{Kind: fleet.CoolerFailure, Device: 12, From: 30 * time.Minute},
	{Kind: fleet.Offline, Device: 20, From: 45 * time.Minute},
	{Kind: fleet.GasEmpty, Device: 30, From: 60 * time.Minute},
	{Kind: fleet.SensorGlitch, Device: 40, From: 80 * time.Minute},
	{Kind: fleet.StuckSensor, Device: 45, From: 90 * time.Minute},
}

// Start is the simulated start of every demo, fixed so runs repeat.
var Start = time.Date(2026, 11, 27, 18, 0, 0, 0, time.UTC)

// Run simulates the fleet through the real decode → windows → rules loop.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.Devices < 1 || o.Duration <= 0 || o.Speed < 0 {
		return nil, fmt.Errorf("demo: need devices >= 1, duration > 0 and speed >= 0")
	}
	var cfg *rules.Config
	var err error
	if o.RulesFile != "" {
		cfg, err = rules.Load(o.RulesFile)
	} else {
		cfg, err = rules.Parse("embedded rules.yml", defaultRules)
	}
	if err != nil {
		return nil, err
	}
	// A rerun replaces the dead letters; the Parquet files are kept and
	// rewritten only if missing (their names and bytes repeat).
	dlPath := filepath.Join(o.OutDir, "deadletter", "demo.jsonl")
	if err := os.Remove(dlPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dl, err := deadletter.Open(dlPath)
	if err != nil {
		return nil, err
	}
	defer dl.Close()

	specs := make([]windows.Spec, 0, 2)
	for _, s := range []string{"1m", "5m/1m"} {
		sp, _ := windows.ParseSpec(s)
		specs = append(specs, sp)
	}
	store, err := localdir.New(o.OutDir)
	if err != nil {
		return nil, err
	}
	// Batches of 10,000 records or 10 minutes of event time: a few dozen
	// files for the default run.
	out, err := batch.New(store, batch.Options{Shard: "demo", MaxRows: 10_000, FlushEvery: 10 * time.Minute})
	if err != nil {
		return nil, err
	}
	sum := &Summary{Rejected: map[string]uint64{}, DeadLetterFile: dl.Path()}
	firing := map[string]bool{}
	// The loop closes in process: alerts go through the command policy the
	// commander Lambda runs, and the kegs obey before their next report.
	policy := command.Default()
	var srv *dashServer
	if o.Serve != "" {
		if srv, err = serve(ctx, o.Serve, "", "", policy); err != nil {
			return nil, err
		}
		defer srv.stop()
		if o.onServe != nil {
			o.onServe(srv)
		}
		if o.Ready != nil {
			o.Ready(srv.URL)
		}
		if o.WaitForPage {
			select {
			case <-srv.browser:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	// publish sends a summary to the dashboard, when there is one.
	publish := func(f func(*live.Publisher)) {
		if srv != nil {
			f(srv.pub)
		}
	}
	var commands []pending
	acted := map[string]string{} // incident -> what the keg did
	p := &progress{out: o.Out, live: o.Live}
	proc, err := pipeline.NewProcessor(pipeline.Options{
		Shard:       "demo",
		Windows:     windows.Options{Specs: specs, AllowedLateness: 30 * time.Second, IdleTimeout: time.Minute},
		Rules:       cfg,
		DeadLetters: dl,
		OnWindow: func(w *windows.Window) {
			out.Window(w)
			publish(func(p *live.Publisher) { p.Window(w) })
		},
		OnRecord: out.Record,
		OnAlert: func(a *rules.Alert) {
			out.Alert(a)
			publish(func(p *live.Publisher) { p.Alert(a) })
			line := fmt.Sprintf("%s %-8s %-8s %-17s %s", offset(a.At), a.State, a.Severity, a.Rule, a.Message)
			sum.Alerts = append(sum.Alerts, line)
			firing[a.Incident] = a.State == rules.Firing
			if !firing[a.Incident] {
				delete(firing, a.Incident)
			}
			p.println(line)
		},
		// Commands follow notifications, as the commander Lambda gets them:
		// a suppressed alert commands nothing, a group commands for each.
		OnNotify: func(n *rules.Alert) {
			for _, a := range append([]rules.Alert{*n}, n.Group...) {
				msg := &schemas.AlertMessage{ID: a.ID, Rule: a.Rule, State: a.State, Device: a.Device}
				if c, ok, err := policy.ForAlert(msg, time.UnixMilli(a.At)); ok && err == nil {
					commands = append(commands, pending{c: c, cause: a.Incident})
					publish(func(p *live.Publisher) {
						p.Command(live.Command{ID: c.ID, Device: c.DeviceID, Action: c.Action, Cause: a.Incident, Outcome: "sent", At: a.At})
					})
					acted[a.Incident] = c.Action
					story := fmt.Sprintf("%s %s: %s detected -> %s", offset(a.At), a.Device, a.Rule, c.Action)
					sum.Story = append(sum.Story, story)
					p.println("         command  " + story)
				} else if a.State == rules.Resolved && acted[a.Incident] != "" {
					story := fmt.Sprintf("%s %s: %s resolved after %s", offset(a.At), a.Device, a.Rule, acted[a.Incident])
					sum.Story = append(sum.Story, story)
					p.println("         loop     " + story)
				}
			}
		},
	})
	if err != nil {
		return nil, err
	}

	faults := slices.Clone(faults)
	for i := range faults {
		faults[i].Device %= o.Devices
	}
	fl := fleet.New(fleet.Options{Devices: o.Devices, Start: Start, Seed: o.Seed, Faults: faults,
		BadRate: 0.001, LateRate: 0.0005, JitterRate: 0.02, Batch: o.Batch})
	// obey has the keg apply a command and tells the dashboard the
	// outcome; it reports whether the keg changed.
	obey := func(pc pending, at time.Time) bool {
		changed, err := fl.Apply(pc.c)
		publish(func(p *live.Publisher) {
			outcome := "applied"
			switch {
			case err != nil:
				outcome = "failed: " + err.Error()
			case !changed:
				outcome = "applied (no change)"
			}
			p.Command(live.Command{ID: pc.c.ID, Device: pc.c.DeviceID, Action: pc.c.Action, Cause: pc.cause, Outcome: outcome, At: at.UnixMilli(), Request: pc.request})
		})
		return err == nil && changed
	}
	fmt.Fprintf(o.Out, "tapline demo: %d kegs, %s of event time from %s, seed %d, windows 1m and 5m/1m, %d rules\n",
		o.Devices, o.Duration, Start.Format(time.RFC3339), o.Seed, len(cfg.Rules))
	fmt.Fprint(o.Out, "faults:")
	for i, f := range faults {
		sep := ","
		if i == len(faults)-1 {
			sep = "\n\n"
		}
		fmt.Fprintf(o.Out, " %s on %s at +%s%s", f.Kind, fleet.DeviceID(f.Device), f.From, sep)
	}

	began := time.Now()
	rate := &rates{}
	var inLoop time.Duration
	var batch []fleet.Record
	nextReport := began
	for fl.Elapsed() < o.Duration {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var tick time.Time
		batch, tick = fl.Step(batch[:0])
		t0 := time.Now()
		for i, r := range batch {
			if err := proc.Process(r.Data, strconv.FormatUint(sum.Records+uint64(i), 10), r.Arrival); err != nil {
				return nil, err
			}
		}
		proc.Tick(tick) // the simulated clock, so runs repeat exactly
		if srv != nil {
			commands = append(commands, operatorRequests(srv, policy, tick)...)
		}
		for _, pc := range commands { // the kegs obey before their next report
			if obey(pc, tick) {
				sum.Commands++
			}
		}
		commands = commands[:0]
		inLoop += time.Since(t0)
		sum.Records += uint64(len(batch))
		if out.Due(proc.Watermark()) {
			if _, err := out.Flush(ctx, proc.Watermark()); err != nil {
				return nil, err
			}
		}
		if o.Speed > 0 {
			target := began.Add(time.Duration(float64(fl.Elapsed()) / o.Speed))
			time.Sleep(time.Until(target))
		}
		if now := time.Now(); now.After(nextReport) {
			nextReport = now.Add(time.Second)
			st := proc.Stats()
			if srv != nil {
				rate.publish(srv.pub, now, st, sum.Records, len(firing), o.Devices, tick, proc.Watermark(), o.Speed)
			}
			p.status(fmt.Sprintf("%s  %9d records  %7.0f/s  windows %7d  rejected %4d  late %4d  firing %d",
				offset(tick.UnixMilli()), sum.Records, float64(sum.Records)/now.Sub(began).Seconds(),
				st.Windows.Windows, rejected(st), st.Rejected[schemas.ReasonLate], len(firing)))
		}
	}
	for _, r := range fl.Flush(batch[:0]) { // readings still batched
		if err := proc.Process(r.Data, strconv.FormatUint(sum.Records, 10), r.Arrival); err != nil {
			return nil, err
		}
		sum.Records++
	}
	proc.Flush()
	if _, err := out.Flush(ctx, proc.Watermark()); err != nil {
		return nil, err
	}
	p.done()
	sum.Files, sum.FilesExisting, sum.Query = out.Written, out.Existing, query(o.OutDir)

	st := proc.Stats()
	sum.Accepted, sum.Windows, sum.Fired, sum.Resolved = st.Accepted, st.Windows.Windows, st.Fired, st.Resolved
	for r, n := range st.Rejected {
		if n > 0 {
			sum.Rejected[schemas.Reason(r).String()] = n
		}
	}
	sum.Elapsed = time.Since(began)
	if inLoop > 0 {
		sum.LoopRate = float64(st.Records-st.Batches+st.Readings) / inLoop.Seconds()
	}
	if srv != nil { // the page stays up, and keeps answering commands, until ctx is done
		fmt.Fprintf(o.Out, "the simulation is over; the dashboard stays at %s until interrupted\n", srv.URL)
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			now := time.Now()
			for _, pc := range operatorRequests(srv, policy, now) {
				obey(pc, now)
			}
		}
	}
	return sum, dl.Close()
}

// pending is a command the kegs apply before their next report: what
// caused it (an incident, or "operator") and the page's request.
type pending struct {
	c              *command.Command
	cause, request string
}

// operatorRequests turns the page's pending command requests into
// commands through the policy (the allow-list the commander applies to
// operators); a refused one is answered at once.
func operatorRequests(srv *dashServer, policy *command.Policy, now time.Time) (out []pending) {
	for {
		select {
		case r := <-srv.requests:
			operator := r.Operator
			if operator == "" {
				operator = "dashboard"
			}
			c, err := policy.ForRequest(&command.Request{DeviceID: r.DeviceID, Action: r.Action, Operator: operator, RequestID: r.RequestID}, now)
			if err != nil {
				srv.pub.Command(live.Command{ID: "refused-" + r.RequestID, Device: r.DeviceID, Action: r.Action, Cause: "operator", Outcome: "refused: " + err.Error(), At: now.UnixMilli(), Request: r.RequestID})
				continue
			}
			srv.pub.Command(live.Command{ID: c.ID, Device: c.DeviceID, Action: c.Action, Cause: "operator", Outcome: "sent", At: now.UnixMilli(), Request: r.RequestID})
			out = append(out, pending{c: c, cause: "operator", request: r.RequestID})
		default:
			return out
		}
	}
}

// rates turns the processor's totals into the service panel's rates.
type rates struct {
	at                     time.Time
	records, late, rejects uint64
}

func (r *rates) publish(p *live.Publisher, now time.Time, st pipeline.Stats, records uint64, firing, devices int, tick time.Time, watermark int64, speed float64) {
	late, rej := st.Rejected[schemas.ReasonLate], rejected(st)
	if !r.at.IsZero() {
		s := now.Sub(r.at).Seconds()
		p.Stats(live.Stats{At: now.UnixMilli(), RecordsPerSec: float64(records-r.records) / s, LatePerSec: float64(late-r.late) / s,
			DeadPerSec: float64(rej-r.rejects) / s, Firing: firing, Devices: devices, EventTime: watermark,
			LagMs: map[string]int64{"demo": max(0, tick.UnixMilli()-watermark)}, SimulatedSpeed: speed})
	}
	r.at, r.records, r.late, r.rejects = now, records, late, rej
}

func rejected(st pipeline.Stats) (n uint64) {
	for r, c := range st.Rejected {
		if schemas.Reason(r) != schemas.ReasonLate {
			n += c
		}
	}
	return n
}

// offset renders event time as +HH:MM:SS since Start.
func offset(ms int64) string {
	d := time.Duration(ms-Start.UnixMilli()) * time.Millisecond
	return fmt.Sprintf("+%02d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// Print writes the end-of-run summary.
func (s *Summary) Print(w io.Writer) {
	var reasons []string
	var total uint64
	for r, n := range s.Rejected {
		reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
		total += n
	}
	slices.Sort(reasons)
	fmt.Fprintf(w, "\nsummary\n")
	fmt.Fprintf(w, "  records       %d in, %d aggregated, %d dead-lettered (%s)\n", s.Records, s.Accepted, total, strings.Join(reasons, ", "))
	fmt.Fprintf(w, "  windows       %d closed\n", s.Windows)
	fmt.Fprintf(w, "  alerts        %d fired, %d resolved\n", s.Fired, s.Resolved)
	fmt.Fprintf(w, "  commands      %d applied by the kegs (policy: sinks/command/policy.yml)\n", s.Commands)
	for _, line := range s.Story {
		fmt.Fprintf(w, "    %s\n", line)
	}
	fmt.Fprintf(w, "  parquet       %d files written (%d already there) under %s/{raw,windows,alerts}/dt=.../hour=.../\n", s.Files, s.FilesExisting, filepath.Dir(filepath.Dir(s.DeadLetterFile)))
	fmt.Fprintf(w, "  dead letters  %s\n", s.DeadLetterFile)
	fmt.Fprintf(w, "  time          %.1fs; the loop (decode, windows, rules, Arrow rows) ran at %.0f readings/s on one core\n", s.Elapsed.Seconds(), s.LoopRate)
	fmt.Fprintf(w, "\nQuery the windows with DuckDB (the Athena stand-in; tapline athena-ddl prints the Athena tables):\n  %s\n", s.Query)
	fmt.Fprintf(w, "Inspect the rejected records with: head -3 %s\n", s.DeadLetterFile)
}

// progress prints status: one redrawn line on a terminal, plain lines
// otherwise.
type progress struct {
	out  io.Writer
	live bool
	last string
}

func (p *progress) status(s string) {
	if p.live {
		fmt.Fprintf(p.out, "\r\033[K%s", s)
		p.last = s
		return
	}
	fmt.Fprintln(p.out, s)
}

func (p *progress) println(s string) {
	if p.live && p.last != "" {
		fmt.Fprintf(p.out, "\r\033[K%s\n%s", s, p.last)
		return
	}
	fmt.Fprintln(p.out, s)
}

func (p *progress) done() {
	if p.live && p.last != "" {
		fmt.Fprintln(p.out)
	}
}

// IsTerminal reports whether f is a terminal, for Options.Live.
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
