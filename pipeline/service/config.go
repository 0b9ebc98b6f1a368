// Package service is `tapline run`: the configuration, the AWS clients,
// the consumer with its sinks, the ops HTTP endpoints and the shutdown
// sequence of the ECS service.
package service

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tapline/tapline/pipeline/consumer"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows"
)

// Config is the service's configuration: a YAML file, then TAPLINE_*
// environment variables (the ECS task definition's), one per field:
// the YAML path in upper case joined by underscores, for example
// TAPLINE_S3_BUCKET or TAPLINE_KCL_SHARD_SYNC. Lists are comma-separated.
type Config struct {
	App             string `yaml:"app"`    // KCL application: lease table and state directory
	Stream          string `yaml:"stream"` // Kinesis stream name
	Region          string `yaml:"region"` // default: the SDK's (AWS_REGION)
	WorkerID        string `yaml:"worker_id"`
	InitialPosition string `yaml:"initial_position"` // TRIM_HORIZON, LATEST or AT_TIMESTAMP
	InitialTime     string `yaml:"initial_timestamp"`

	Endpoints struct {
		Kinesis  string `yaml:"kinesis"`
		DynamoDB string `yaml:"dynamodb"`
		S3       string `yaml:"s3"`
		SNS      string `yaml:"sns"`
	} `yaml:"endpoints"` // empty: AWS's

	S3 struct {
		Bucket string `yaml:"bucket"`
		Prefix string `yaml:"prefix"`
	} `yaml:"s3"`
	SNS struct {
		TopicARN string `yaml:"topic_arn"` // empty: alerts go to S3 only
	} `yaml:"sns"`

	Windows         []string      `yaml:"windows"`
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	SeriesTTL       time.Duration `yaml:"series_ttl"`
	MaxSeries       int           `yaml:"max_series"`
	Quantiles       bool          `yaml:"quantiles"`
	MaxFutureSkew   time.Duration `yaml:"max_future_skew"`
	MaxAhead        time.Duration `yaml:"max_ahead"`  // 0: off
	RulesFile       string        `yaml:"rules_file"` // empty: no rules

	Batch struct {
		MaxRows    int           `yaml:"max_rows"`
		MaxBytes   int           `yaml:"max_bytes"`
		FlushEvery time.Duration `yaml:"flush_every"`
	} `yaml:"batch"`

	KCL struct {
		ShardSync     time.Duration `yaml:"shard_sync"`
		FailoverTime  time.Duration `yaml:"failover_time"`
		IdleBetween   time.Duration `yaml:"idle_between_reads"`
		MaxRecords    int           `yaml:"max_records"`
		MaxLeases     int           `yaml:"max_leases"`
		LeaseStealing bool          `yaml:"lease_stealing"`
	} `yaml:"kcl"`

	HTTPAddr        string        `yaml:"http_addr"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"` // below the ECS stopTimeout (at most 120 s)
	LogLevel        string        `yaml:"log_level"`        // debug, info, warn, error
}

// DefaultMaxAhead is how far after its arrival a record's event time
// counts for the windows (see pipeline.Options.MaxAhead): well above the
// few milliseconds an NTP-synced device leads by, well below the default
// allowed lateness, so a fast clock cannot make other devices late.
const DefaultMaxAhead = 10 * time.Second

// Defaults returns the configuration before the file and environment.
func Defaults() Config {
	var c Config
	c.App = "tapline"
	c.InitialPosition = consumer.TrimHorizon
	c.S3.Prefix = "tapline"
	c.Windows = []string{"1m", "5m/1m"}
	c.AllowedLateness = 30 * time.Second
	c.IdleTimeout = time.Minute
	c.MaxAhead = DefaultMaxAhead
	c.HTTPAddr = ":8080"
	c.ShutdownTimeout = 100 * time.Second
	c.LogLevel = "info"
	return c
}

// Load reads the YAML file (empty path: defaults only), applies the
// environment and validates.
func Load(path string, environ []string) (Config, error) {
	c := Defaults()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// applyEnv sets fields from TAPLINE_* variables.
func applyEnv(c *Config, environ []string) error {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "TAPLINE_") {
			vars[k] = v
		}
	}
	var errs []error
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := range t.NumField() {
			name := strings.ToUpper(strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0])
			f := v.Field(i)
			if f.Kind() == reflect.Struct {
				walk(f, path+name+"_")
				continue
			}
			env := path + name
			s, ok := vars[env]
			if !ok {
				continue
			}
			if err := setField(f, s); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", env, s, err))
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "TAPLINE_")
	return errors.Join(errs...)
}

func setField(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case string:
		f.SetString(s)
	case []string:
		var list []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
		f.Set(reflect.ValueOf(list))
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(n))
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// Validate reports every problem, one per line.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Stream == "" {
		bad("stream", "required (TAPLINE_STREAM)")
	}
	if c.S3.Bucket == "" {
		bad("s3.bucket", "required (TAPLINE_S3_BUCKET)")
	}
	if err := layout.ValidPrefix(c.S3.Prefix); err != nil {
		bad("s3.prefix", "%v", err)
	}
	if err := layout.ValidPrefix(c.App); err != nil || c.App == "" || strings.Contains(c.App, "/") {
		bad("app", "%q must be one key segment of [a-zA-Z0-9._-]", c.App)
	}
	switch c.InitialPosition {
	case consumer.TrimHorizon, consumer.Latest:
	case consumer.AtTimestamp:
		if _, err := time.Parse(time.RFC3339, c.InitialTime); err != nil {
			bad("initial_timestamp", "AT_TIMESTAMP needs an RFC 3339 time: %v", err)
		}
	default:
		bad("initial_position", "%q is not TRIM_HORIZON, LATEST or AT_TIMESTAMP", c.InitialPosition)
	}
	if len(c.Windows) == 0 {
		bad("windows", "at least one window spec is required")
	}
	for _, w := range c.Windows {
		if _, err := windows.ParseSpec(w); err != nil {
			bad("windows", "%v", err)
		}
	}
	if c.MaxAhead < 0 {
		bad("max_ahead", "%v is negative (0 turns it off)", c.MaxAhead)
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout > 120*time.Second {
		bad("shutdown_timeout", "%v must be above 0 and at most 120s (the ECS stopTimeout limit)", c.ShutdownTimeout)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	for _, ep := range []struct{ name, v string }{{"endpoints.kinesis", c.Endpoints.Kinesis}, {"endpoints.dynamodb", c.Endpoints.DynamoDB}, {"endpoints.s3", c.Endpoints.S3}, {"endpoints.sns", c.Endpoints.SNS}} {
		if ep.v != "" && !strings.HasPrefix(ep.v, "http://") && !strings.HasPrefix(ep.v, "https://") {
			bad(ep.name, "%q is not an http(s) URL", ep.v)
		}
	}
	return errors.Join(errs...)
}
