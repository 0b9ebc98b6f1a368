// Command tapline turns IoT telemetry into windowed aggregates, alerts and
// actions. Subcommands:
//
//	tapline run         the service: consume a Kinesis stream, write S3, publish alerts
//	tapline demo        run the shard loop on a simulated keg fleet (no AWS needed)
//	tapline athena-ddl  print the Athena DDL for the S3 datasets
//	tapline compact     rewrite closed hours as large sorted files for Athena
//	tapline redrive-alerts  publish the alerts dead-lettered while SNS refused them
//	tapline backtest    what rules would have said about recorded data, scored against labels
//	tapline healthcheck GET /healthz of a running service (the container's health check)
//	tapline version     print the version stamped at build time
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	// Mozilla's CA roots, used when the system has none: the container is
	// FROM scratch (deploy/Dockerfile).
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/tapline/tapline/cmd/internal/demo"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/pipeline/backtest"
	"github.com/tapline/tapline/pipeline/rulestest"
	"github.com/tapline/tapline/pipeline/service"
	"github.com/tapline/tapline/sinks/athena"
	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

const usage = `usage: tapline <command> [flags]

commands:
  run         the service: consume a Kinesis stream (KCL), write Parquet to S3, publish alerts to SNS
  demo        run the shard loop on a simulated keg fleet, no AWS account needed
  athena-ddl  print the Athena/Glue DDL (with partition projection) for the S3 datasets
  compact     rewrite closed hours as large Parquet files sorted by device and time (hourly, safe to stop)
  redrive-alerts
              publish the alerts dead-lettered to S3 while SNS refused them (oldest first, each once)
  backtest    replay CSV, JSON lines or raw Parquet through the pipeline with a rules file: the alerts, scored with -labels
  rules test  run rule unit tests (input series and the alerts expected), as promtool test rules
  silence add|list|expire
              silence alerts by matcher and time range (maintenance windows), stored in S3 for the service
  healthcheck exit 0 if the service on TAPLINE_HTTP_ADDR (default :8080) answers /healthz
  version     print the version

Run 'tapline <command> -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = runService(ctx, os.Args[2:])
	case "demo":
		err = runDemo(ctx, os.Args[2:])
	case "healthcheck":
		err = healthcheck(os.Getenv("TAPLINE_HTTP_ADDR"))
	case "version":
		fmt.Println("tapline", version)
		return
	case "athena-ddl":
		err = runAthenaDDL(os.Args[2:])
	case "compact":
		err = runCompact(ctx, os.Args[2:], os.Stdout)
	case "redrive-alerts":
		err = runRedrive(ctx, os.Args[2:])
	case "backtest":
		err = runBacktest(ctx, os.Args[2:])
	case "rules":
		err = runRules(os.Args[2:])
	case "silence":
		err = runSilence(ctx, os.Args[2:], os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "tapline: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tapline:", err)
		os.Exit(1)
	}
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tapline demo", flag.ContinueOnError)
	o := demo.Options{Out: os.Stdout, Live: demo.IsTerminal(os.Stdout)}
	fs.IntVar(&o.Devices, "devices", 50, "number of simulated kegs")
	fs.DurationVar(&o.Duration, "duration", 2*time.Hour, "simulated event time")
	fs.Float64Var(&o.Speed, "speed", 720, "simulated seconds per real second (0: as fast as possible)")
	fs.Uint64Var(&o.Seed, "seed", 1, "random seed; the same seed gives the same records and alerts")
	fs.StringVar(&o.RulesFile, "rules", "", "rules YAML file (default: the embedded keg rules)")
	fs.StringVar(&o.OutDir, "out", "tapline-data", "directory for output (dead letters)")
	fs.IntVar(&o.Batch, "batch", 0, "kegs send their readings N at a time, one message of readings (0 or 1: one a message)")
	fs.StringVar(&o.Serve, "serve", "", "serve the live dashboard on this address (:8080), during the run and after it until interrupted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	speedSet := false
	fs.Visit(func(f *flag.Flag) { speedSet = speedSet || f.Name == "speed" })
	if o.Serve != "" {
		if !speedSet {
			o.Speed = 60 // a minute of the fleet a second: watchable
		}
		o.Live, o.WaitForPage = false, true
		o.Ready = func(url string) {
			fmt.Fprintf(os.Stdout, "dashboard: %s (the simulation starts when it is open)\n", url)
		}
	}
	if o.Batch < 0 || o.Batch > 1000 {
		return errors.New("tapline demo: -batch must be 0..1000")
	}
	sum, err := demo.Run(ctx, o)
	if err != nil {
		return err
	}
	sum.Print(os.Stdout)
	return nil
}

func runBacktest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tapline backtest", flag.ContinueOnError)
	rulesFile := fs.String("rules", rules.DefaultFile, "rules YAML file, or \"default\" for the embedded default set; the windows are those the rules read")
	labelsFile := fs.String("labels", "", "labelled anomaly windows (NAB's windows.json): print the scoring table")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	fromArg := fs.String("from", "", "replay event times from this time on: RFC 3339, YYYY-MM-DD or a duration ago (168h, 7d)")
	toArg := fs.String("to", "", "replay event times before this time (same forms)")
	endpoint := fs.String("s3-endpoint", os.Getenv("AWS_ENDPOINT_URL_S3"), "S3 endpoint for s3:// inputs (a local stack); default AWS")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tapline backtest [-rules rules.yml] [-labels windows.json] [-json] [-from T] [-to T] INPUT...\n\n"+
			"Replays .csv (timestamp,value[,device]), .jsonl (records as devices send them), .parquet\n"+
			"(tapline's raw dataset) and s3://bucket/prefix (the raw dataset the service wrote there,\n"+
			"the hours between -from and -to) through the service's pipeline, merged by event time,\n"+
			"and prints the alerts, or with -labels the scoring. AWS credentials and region come from\n"+
			"the usual environment and files.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("backtest: at least one input is required")
	}
	var r backtest.Range
	var err error
	now := time.Now()
	if r.From, err = backtest.ParseTime(*fromArg, now); err != nil {
		return fmt.Errorf("backtest: -from: %w", err)
	}
	if r.To, err = backtest.ParseTime(*toArg, now); err != nil {
		return fmt.Errorf("backtest: -to: %w", err)
	}
	cfg, err := rules.LoadOrDefault(*rulesFile)
	if err != nil {
		return err
	}
	specs, err := cfg.Specs()
	if err != nil {
		return err
	}
	progress := terminalProgress(os.Stderr)
	bucket := func(name string) (backtest.Objects, error) {
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		if *endpoint != "" {
			awsCfg.BaseEndpoint = aws.String(*endpoint)
		}
		return s3sink.New(awsCfg, s3sink.Options{Bucket: name})
	}
	readings, err := backtest.ReadInputs(ctx, fs.Args(), r, bucket, progress("reading S3 objects"))
	if err != nil {
		return err
	}
	res, err := backtest.RunProgress(readings, pipeline.Options{Windows: windows.Options{Specs: specs}, Rules: cfg}, progress("replaying records"))
	if err != nil {
		return err
	}
	var score *backtest.Score
	if *labelsFile != "" {
		f, err := os.Open(*labelsFile)
		if err != nil {
			return err
		}
		labels, err := backtest.ReadLabels(f)
		f.Close()
		if err != nil {
			return err
		}
		s := backtest.ScoreAlerts(res, labels)
		score = &s
	}
	switch {
	case *asJSON:
		return backtest.WriteJSON(os.Stdout, res, score)
	case score != nil:
		return score.WriteTable(os.Stdout)
	}
	return backtest.WriteAlerts(os.Stdout, res)
}

// runRules runs `tapline rules test FILE...`: every test of every file,
// PASS or FAIL with what differed; an error (exit 1) if any failed.
func runRules(args []string) error {
	if len(args) < 2 || args[0] != "test" {
		return errors.New("usage: tapline rules test FILE...  (test files: see the rulestest package doc; cmd/internal/demo/rules_test.yml is one)")
	}
	failed := 0
	for _, f := range args[1:] {
		res, err := rulestest.RunFile(f)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Failure == "" {
				fmt.Printf("PASS %s: %s\n", f, r.Name)
				continue
			}
			failed++
			fmt.Printf("FAIL %s: %s\n%s", f, r.Name, r.Failure)
		}
	}
	if failed > 0 {
		return fmt.Errorf("rules test: %d failed", failed)
	}
	return nil
}

// terminalProgress returns progress reporters that draw "what: done/total"
// on f when it is a terminal, and nil ones (no reporting) otherwise, so
// output piped to a file or a program carries no progress lines.
func terminalProgress(f *os.File) func(what string) func(done, total int) {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return func(string) func(int, int) { return nil }
	}
	return func(what string) func(int, int) {
		return func(done, total int) {
			fmt.Fprintf(f, "\r%s: %d/%d", what, done, total)
			if done == total {
				fmt.Fprintln(f)
			}
		}
	}
}

func runService(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tapline run", flag.ContinueOnError)
	cfg, err := parseServiceFlags(fs, args, "usage: tapline run [-config file.yaml]\n\nSee deploy/local/tapline.yaml for every setting and its environment variable.")
	if err != nil {
		return err
	}
	return service.Run(ctx, cfg, service.Logger(cfg, os.Stderr))
}

func runRedrive(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("tapline redrive-alerts", flag.ContinueOnError)
	within := fs.Duration("since", 0, "only alerts of the last DURATION of event time (lists fewer partitions); 0: all")
	cfg, err := parseServiceFlags(fs, args, "usage: tapline redrive-alerts [-config file.yaml] [-since 48h]\n\n"+
		"Publishes the alerts under {prefix}/deadletter/ that SNS refused, oldest first, and marks each\n"+
		"under {prefix}/_redriven/ so a second run does not send it again. Run it with the service's\n"+
		"configuration and role (on ECS: a one-off task of the service's task definition).")
	if err != nil {
		return err
	}
	var since time.Time
	if *within > 0 {
		since = time.Now().Add(-*within)
	}
	rep, err := service.RedriveAlerts(ctx, cfg, since)
	for _, r := range rep.Refused {
		fmt.Fprintln(os.Stderr, "refused:", r)
	}
	fmt.Printf("dead-lettered alerts: %d; published now: %d; published by an earlier run: %d; refused: %d\n",
		rep.Found, rep.Sent, rep.Already, len(rep.Refused))
	if err == nil && len(rep.Refused) > 0 {
		err = fmt.Errorf("%d objects under the dead-letter prefix are not alerts this service wrote", len(rep.Refused))
	}
	return err
}

// parseServiceFlags adds -config to fs, parses args and loads the
// service's configuration, as `run` and the commands that act for it do.
// A local, when it reports true after parsing, says the command works
// without the service (no configuration is loaded).
func parseServiceFlags(fs *flag.FlagSet, args []string, usage string, local ...func() bool) (service.Config, error) {
	path := fs.String("config", os.Getenv("TAPLINE_CONFIG"), "YAML configuration file (TAPLINE_CONFIG); TAPLINE_* variables override it")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return service.Config{}, err
	}
	if len(local) > 0 && local[0]() {
		return service.Config{}, nil
	}
	return service.Load(*path, os.Environ())
}

// version is stamped by deploy/build.sh (-ldflags -X main.version=...).
var version = "dev"

// healthcheck is the container's health check: distroless images have no
// curl, so the binary checks itself.
func healthcheck(addr string) error {
	if addr == "" {
		addr = ":8080"
	}
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

func runAthenaDDL(args []string) error {
	fs := flag.NewFlagSet("tapline athena-ddl", flag.ContinueOnError)
	bucket := fs.String("bucket", "", "S3 bucket holding tapline's datasets (required)")
	prefix := fs.String("prefix", "tapline", "key prefix of the datasets in the bucket")
	database := fs.String("database", "tapline", "Glue database for the tables")
	since := fs.String("since", "2024-01-01", "first date (yyyy-MM-dd) partition projection covers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bucket == "" {
		return errors.New("athena-ddl: --bucket is required")
	}
	script, err := athena.Script(*database, *bucket, *prefix, *since)
	if err != nil {
		return err
	}
	fmt.Print(script)
	return nil
}
