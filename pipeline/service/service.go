package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tapline/tapline/pipeline/consumer"
	"github.com/tapline/tapline/sinks/compact"
	"github.com/tapline/tapline/sinks/live"
	"github.com/tapline/tapline/sinks/s3sink"
	"github.com/tapline/tapline/sinks/snssink"
	"github.com/tapline/tapline/windows/rules"
)

// Logger returns the service's JSON logger at the configured level.
func Logger(c Config, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// sampleHeap turns the runtime's heap profile off unless pprof serves
// it: the profile records a stack for every ~512 KiB allocated, and
// walking the KCL's and the SDK's deep stacks for them was 1.5-4% of
// the process's CPU in two profiles (benchmarks/RESULTS.md).
func sampleHeap(pprof bool) {
	if pprof {
		runtime.MemProfileRate = defaultMemProfileRate
	} else {
		runtime.MemProfileRate = 0
	}
}

// defaultMemProfileRate is the runtime's own rate, read before
// sampleHeap changes it.
var defaultMemProfileRate = runtime.MemProfileRate

// Run runs the service until ctx ends (SIGTERM), then stops fetching,
// cuts and checkpoints every shard, releases the leases, drains the
// alert queue and returns, all within Config.ShutdownTimeout.
func Run(ctx context.Context, c Config, log *slog.Logger) error {
	sampleHeap(c.Pprof)
	with, err := awsConfigs(ctx, c)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s3store, err := s3sink.New(with(c.Endpoints.S3), s3sink.Options{Bucket: c.S3.Bucket})
	if err != nil {
		return err
	}
	store := instrument(s3store, reg)

	o := c.Options
	if c.RulesFile != "" {
		watch, err := newRulesWatch(c.RulesFile, with(c.Endpoints.S3), o.Pipeline.CheckRules, log, reg)
		if err != nil {
			return err
		}
		watch.silences = NewSilenceStore(s3store, c.S3.Prefix, c.App, log, reg)
		if o.Pipeline.Rules, err = watch.load(ctx); err != nil {
			return err
		}
		o.Rules = watch.Rules
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go watch.run(ctx, c.RulesReload, hup)
	}

	var pub *snssink.Publisher
	pubDone := make(chan struct{})
	onAlert := func(*rules.Alert) {}
	if c.SNS.TopicARN != "" {
		toS3 := snssink.DeadLetterTo(store, c.S3.Prefix, c.macKey(), func(err error) {
			log.Error("alert lost: neither published nor dead-lettered", "err", err)
		})
		pub, err = snssink.New(with(c.Endpoints.SNS), snssink.Options{
			TopicARN: c.SNS.TopicARN, MACKey: c.macKey(), QueueSize: c.SNS.QueueSize,
			DeadLetter: func(a *rules.Alert, why error) {
				// The stack alarms on this line; the remedy is in it.
				log.Warn("alert dead-lettered", "alert_id", a.ID, "state", string(a.State), "device_id", a.Device, "rule", a.Rule,
					"err", why, "remedy", "tapline redrive-alerts once SNS accepts again")
				toS3(a, why)
			},
		})
		if err != nil {
			return err
		}
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: "sns_published_total", Help: "Alerts published to SNS."}, func() float64 { return float64(pub.Sent.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: "sns_failed_total", Help: "Alerts SNS refused after retries (dead-lettered to S3)."}, func() float64 { return float64(pub.Failed.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: "sns_dropped_total", Help: "Alerts that found the queue full or closed (dead-lettered to S3)."}, func() float64 { return float64(pub.Dropped.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: "sns_lost_total", Help: "Alerts that found the dead-letter queue full too: neither published nor dead-lettered (still in the alerts dataset)."}, func() float64 { return float64(pub.Lost.Load()) }),
		)
		onAlert = func(a *rules.Alert) {
			cp := *a
			pub.Enqueue(&cp)
		}
		go func() {
			defer close(pubDone)
			pub.Run(context.WithoutCancel(ctx))
		}()
	} else {
		close(pubDone)
	}

	if c.Live.Endpoint != "" {
		iot := iotdataplane.NewFromConfig(with(c.Live.Endpoint))
		lp, err := live.New(live.Options{App: c.App, Send: func(ctx context.Context, topic string, payload []byte) error {
			_, err := iot.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String(topic), Payload: payload, Qos: 0})
			return err
		}})
		if err != nil {
			return err
		}
		for name, v := range map[string]func(live.Counters) uint64{
			"live_windows_total":       func(c live.Counters) uint64 { return c.Windows },
			"live_sent_total":          func(c live.Counters) uint64 { return c.Sent },
			"live_dropped_queue_total": func(c live.Counters) uint64 { return c.DroppedQueue },
			"live_dropped_rate_total":  func(c live.Counters) uint64 { return c.DroppedRate },
			"live_send_errors_total":   func(c live.Counters) uint64 { return c.SendErrors },
		} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "tapline", Name: name, Help: "Live dashboard summaries: " + strings.TrimSuffix(strings.TrimPrefix(name, "live_"), "_total") + " (package sinks/live)."},
				func() float64 { return float64(v(lp.Counters())) }))
		}
		o.Pipeline.OnWindow, o.Pipeline.OnAlert = lp.Window, lp.Alert
		go lp.Run(ctx)
		log.Info("live summaries", "endpoint", c.Live.Endpoint, "topics", live.Topic(c.App, "#"))
	}

	o.Region = with("").Region
	o.Kinesis = kinesis.NewFromConfig(with(c.Endpoints.Kinesis))
	o.DynamoDB = dynamodb.NewFromConfig(with(c.Endpoints.DynamoDB))
	o.Store, o.Prefix = store, c.S3.Prefix
	o.OnAlert, o.Logger, o.Registry = onAlert, log, reg
	cons, err := consumer.New(o)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	mux := Handler(cons.Ready, reg)
	if c.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	log.Info("tapline running", "stream", c.Stream, "app", c.App, "bucket", c.S3.Bucket, "prefix", c.S3.Prefix, "http", ln.Addr().String(),
		"max_series", c.Pipeline.Windows.MaxSeries, "max_series_per_device", c.Pipeline.Windows.MaxSeriesPerDevice)

	if err := cons.Start(ctx); err != nil {
		srv.Close()
		return err
	}
	<-ctx.Done()
	began := time.Now()
	log.Info("stopping: cutting and checkpointing every shard", "deadline", c.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	stopErr := cons.Stop(sctx)
	if pub != nil {
		pub.Close()
	}
	select {
	case <-pubDone:
	case <-sctx.Done():
		stopErr = errors.Join(stopErr, errors.New("alert queue not drained before the deadline"))
	}
	srv.Shutdown(sctx)
	log.Info("stopped", "took", time.Since(began).Round(time.Millisecond).String(), "err", stopErr)
	return stopErr
}

// macKey is the alert MAC key, nil when none is configured.
func (c *Config) macKey() []byte {
	if c.SNS.MACKey == "" {
		return nil
	}
	return []byte(c.SNS.MACKey)
}

// Handler serves the ops endpoints: /healthz (the process is alive),
// /readyz (the worker runs and holds a lease) and /metrics.
func Handler(ready func() bool, reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: no shard lease held", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// instrumented counts a store's PUTs, bytes and latency.
type instrumented struct {
	*s3sink.Store
	puts, bytes, existing prometheus.Counter
	latency               prometheus.Histogram
}

func instrument(s *s3sink.Store, reg prometheus.Registerer) *instrumented {
	i := &instrumented{Store: s,
		puts:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: "s3_puts_total", Help: "Objects written to S3 (data and state)."}),
		bytes:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: "s3_put_bytes_total", Help: "Bytes written to S3."}),
		existing: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tapline", Name: "s3_puts_existing_total", Help: "PUTs that found the object already written (replays)."}),
		latency:  prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "tapline", Name: "s3_put_seconds", Help: "S3 PUT latency, retries included.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
	}
	reg.MustRegister(i.puts, i.bytes, i.existing, i.latency)
	return i
}

func (i *instrumented) Put(ctx context.Context, key string, data []byte) (bool, error) {
	began := time.Now()
	wrote, err := i.Store.Put(ctx, key, data)
	i.latency.Observe(time.Since(began).Seconds())
	if err == nil {
		i.puts.Inc()
		i.bytes.Add(float64(len(data)))
		if !wrote {
			i.existing.Inc()
		}
	}
	return wrote, err
}

// awsConfigs loads the default AWS configuration (credentials, region)
// and returns it for a service, with the service's endpoint if one is
// configured.
func awsConfigs(ctx context.Context, c Config) (func(endpoint string) aws.Config, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, func(o *awsconfig.LoadOptions) error {
		if c.Region != "" {
			o.Region = c.Region
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	return func(endpoint string) aws.Config {
		cfg := awsCfg.Copy()
		if endpoint != "" {
			cfg.BaseEndpoint = aws.String(endpoint)
		}
		return cfg
	}, nil
}

// RedriveAlerts publishes the alerts the service dead-lettered to S3 when
// SNS refused them (snssink.Publisher.Redrive), those of event time since
// or later (zero: all), checked against the service's rules, with the
// service's configuration and permissions:
// S3 read, list and put under the prefix, and publish to the topic.
func RedriveAlerts(ctx context.Context, c Config, since time.Time) (snssink.RedriveReport, error) {
	if c.SNS.TopicARN == "" {
		return snssink.RedriveReport{}, errors.New("redrive: no sns.topic_arn configured (TAPLINE_SNS_TOPIC_ARN)")
	}
	with, err := awsConfigs(ctx, c)
	if err != nil {
		return snssink.RedriveReport{}, err
	}
	store, err := s3sink.New(with(c.Endpoints.S3), s3sink.Options{Bucket: c.S3.Bucket})
	if err != nil {
		return snssink.RedriveReport{}, err
	}
	// Redrive publishes directly and reports failures itself; nothing is
	// queued, so nothing reaches DeadLetter.
	pub, err := snssink.New(with(c.Endpoints.SNS), snssink.Options{TopicARN: c.SNS.TopicARN, MACKey: c.macKey(), DeadLetter: func(*rules.Alert, error) {}})
	if err != nil {
		return snssink.RedriveReport{}, err
	}
	rs := &rules.Config{}
	switch c.RulesFile {
	case "":
	case rules.DefaultFile:
		rs = rules.Default()
	default:
		watch, err := newRulesWatch(c.RulesFile, with(c.Endpoints.S3), func(*rules.Config) error { return nil }, slog.Default(), prometheus.NewRegistry())
		if err != nil {
			return snssink.RedriveReport{}, err
		}
		if rs, err = watch.load(ctx); err != nil {
			return snssink.RedriveReport{}, err
		}
	}
	return pub.Redrive(ctx, store, snssink.RedriveOptions{Prefix: c.S3.Prefix, Since: since, Rules: rs})
}

// Compact runs compaction (package compact) on the service's bucket and
// prefix, with its credentials and endpoint: `tapline compact`.
func Compact(ctx context.Context, c Config, o compact.Options) (compact.Report, error) {
	store, err := compactStore(ctx, c)
	if err != nil {
		return compact.Report{}, err
	}
	o.Store, o.Prefix = store, c.S3.Prefix
	return compact.Run(ctx, o)
}

// CompactStatus is compact.Statuses for the service's bucket and prefix.
func CompactStatus(ctx context.Context, c Config, datasets []string) ([]compact.Status, error) {
	store, err := compactStore(ctx, c)
	if err != nil {
		return nil, err
	}
	return compact.Statuses(ctx, store, c.S3.Prefix, datasets)
}

func compactStore(ctx context.Context, c Config) (*s3sink.Store, error) {
	with, err := awsConfigs(ctx, c)
	if err != nil {
		return nil, err
	}
	return s3sink.New(with(c.Endpoints.S3), s3sink.Options{Bucket: c.S3.Bucket})
}
