// Package service is `tapline run`: the configuration, the AWS clients,
// the consumer with its sinks, the ops HTTP endpoints and the shutdown
// sequence of the ECS service.
package service

import (
	"encoding"
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
	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// Config is the service's configuration: a YAML file, then TAPLINE_*
// environment variables (the ECS task definition's), one per field:
// the YAML path in upper case joined by underscores, for example
// TAPLINE_S3_BUCKET or TAPLINE_KCL_SHARD_SYNC. Lists are comma-separated.
//
// The consumer's options (and through them the pipeline's, the windows',
// the decoder's and the batch writer's) are embedded as they are: their
// yaml tags are the keys, their EnsureDefaults and Validate methods the
// defaults and the checks. A new knob is a field with a tag in the
// package it configures.
type Config struct {
	consumer.Options `yaml:",inline"`

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
		// MACKey signs every alert message (at least 32 bytes), so the
		// command Lambda, which holds the same key, acts only on the
		// service's alerts. A secret: in ECS it comes from Secrets
		// Manager as TAPLINE_SNS_MAC_KEY.
		MACKey string `yaml:"mac_key"`
		// QueueSize bounds the alerts waiting for SNS, and those waiting
		// for the dead-letter store; 0: 1,024.
		QueueSize int `yaml:"queue_size"`
	} `yaml:"sns"`

	// Live, when its endpoint is set, publishes the dashboard's live
	// summaries (package sinks/live) to IoT Core's data endpoint
	// (https://…-ats.iot.{region}.amazonaws.com; a local stand-in in
	// tests) under tapline/live/{app}/. Bounded and non-blocking: an
	// outage costs counted drops, nothing else.
	Live struct {
		Endpoint string `yaml:"endpoint"`
	} `yaml:"live"`

	// RulesFile is a path or s3://bucket/key; empty: no rules; "default":
	// the embedded default set (rules.Default). A file or object is read
	// again every RulesReload (0: only on SIGHUP) and on SIGHUP; a valid
	// new version is reloaded by each shard at a recorded point.
	RulesFile   string        `yaml:"rules_file"`
	RulesReload time.Duration `yaml:"rules_reload"`

	HTTPAddr        string        `yaml:"http_addr"`
	Pprof           bool          `yaml:"pprof"`            // serve /debug/pprof/ on http_addr too (off: it shows internals)
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"` // below the ECS stopTimeout (at most 120 s)
	LogLevel        string        `yaml:"log_level"`        // debug, info, warn, error
}

// DefaultMaxAhead is how far after its arrival a record's event time
// counts for the windows (see pipeline.Options.MaxAhead): well above the
// few milliseconds an NTP-synced device leads by, well below the default
// allowed lateness, so a fast clock cannot make other devices late.
const DefaultMaxAhead = 10 * time.Second

// Defaults returns the configuration before the file and environment:
// the service's choices where they differ from the packages' defaults,
// which Load applies after the file and the environment.
func Defaults() Config {
	var c Config
	c.App = "tapline"
	c.S3.Prefix = "tapline"
	for _, w := range []string{"1m", "5m/1m"} {
		sp, err := windows.ParseSpec(w)
		if err != nil {
			panic(err)
		}
		c.Pipeline.Windows.Specs = append(c.Pipeline.Windows.Specs, sp)
	}
	c.Pipeline.Windows.AllowedLateness = 30 * time.Second
	c.Pipeline.Windows.IdleTimeout = time.Minute
	c.Pipeline.MaxAhead = DefaultMaxAhead
	c.HTTPAddr = ":8080"
	c.RulesReload = 30 * time.Second
	c.ShutdownTimeout = 100 * time.Second
	c.LogLevel = "info"
	return c
}

// Load reads the YAML file (empty path: defaults only), applies the
// environment and the packages' defaults, and validates. It reports
// every problem, one per line. An unset max_series is derived from the
// process's memory limit (maxSeriesFor), so one shard's series cannot
// take more than its share of the task.
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
	envErr := applyEnv(&c, environ)
	if c.RulesFile == rules.DefaultFile {
		c.Pipeline.Windows.Specs = rules.AddDefaultWindows(c.Pipeline.Windows.Specs)
	}
	if c.Pipeline.Windows.MaxSeries == 0 {
		c.Pipeline.Windows.MaxSeries = maxSeriesFor(memoryLimit(), c.KCL.MaxLeases)
	}
	c.EnsureDefaults()
	return c, errors.Join(envErr, c.Validate())
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
	var walk func(v reflect.Value, key string)
	walk = func(v reflect.Value, key string) {
		t := v.Type()
		for i := range t.NumField() {
			name, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			f := v.Field(i)
			switch {
			case name == "-" || !t.Field(i).IsExported():
				continue
			case opts == "inline":
				walk(f, key)
				continue
			}
			path := key + name
			if f.Kind() == reflect.Struct && !isText(f) {
				walk(f, path+".")
				continue
			}
			env := "TAPLINE_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
			s, ok := vars[env]
			if !ok {
				continue
			}
			if err := setField(f, s); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: %s=%q: %v", path, env, s, err))
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return errors.Join(errs...)
}

func isText(f reflect.Value) bool {
	_, ok := f.Addr().Interface().(encoding.TextUnmarshaler)
	return ok
}

func setField(f reflect.Value, s string) error {
	if u, ok := f.Addr().Interface().(encoding.TextUnmarshaler); ok {
		if s == "" {
			f.SetZero() // unset, as an empty variable in a task definition means
			return nil
		}
		return u.UnmarshalText([]byte(s))
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Slice:
		list := reflect.MakeSlice(f.Type(), 0, 0)
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				e := reflect.New(f.Type().Elem()).Elem()
				if err := setField(e, p); err != nil {
					return err
				}
				list = reflect.Append(list, e)
			}
		}
		f.Set(list)
	case reflect.Int64: // time.Duration
		if f.Type() != reflect.TypeFor[time.Duration]() {
			return fmt.Errorf("unsupported type %s", f.Type())
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(n))
	case reflect.Bool:
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

// Validate reports every problem, one per line, as "config: key: why".
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, err := range lines(c.Options.Validate()) {
		errs = append(errs, fmt.Errorf("config: %w", err))
	}
	if c.S3.Bucket == "" {
		bad("s3.bucket", "required (TAPLINE_S3_BUCKET)")
	}
	if c.SNS.MACKey != "" && len(c.SNS.MACKey) < schemas.MinMACKey {
		bad("sns.mac_key", "%d bytes: at least %d", len(c.SNS.MACKey), schemas.MinMACKey)
	}
	if err := layout.ValidPrefix(c.S3.Prefix); err != nil {
		bad("s3.prefix", "%v", err)
	}
	if c.RulesReload < 0 {
		bad("rules_reload", "%v is negative (0: only on SIGHUP)", c.RulesReload)
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout > 120*time.Second {
		bad("shutdown_timeout", "%v must be above 0 and at most 120s (the ECS stopTimeout limit)", c.ShutdownTimeout)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	for _, ep := range []struct{ name, v string }{{"endpoints.kinesis", c.Endpoints.Kinesis}, {"endpoints.dynamodb", c.Endpoints.DynamoDB}, {"endpoints.s3", c.Endpoints.S3}, {"endpoints.sns", c.Endpoints.SNS}, {"live.endpoint", c.Live.Endpoint}} {
		if ep.v != "" && !strings.HasPrefix(ep.v, "http://") && !strings.HasPrefix(ep.v, "https://") {
			bad(ep.name, "%q is not an http(s) URL", ep.v)
		}
	}
	return errors.Join(errs...)
}

// lines flattens joined errors, one problem each.
func lines(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, lines(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
