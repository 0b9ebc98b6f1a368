// Command devicesim simulates a fleet of smart kegs (package fleet: pours,
// cooling, CO2, battery; faults by device or by fraction of the fleet) and
// runs it live (package sim): telemetry to a Kinesis stream as IoT Core's
// topic rule would send it, to MQTT and/or as JSON lines, while the kegs
// listen on MQTT for commands and obey them.
//
//	devicesim -devices 200 -duration 1h                       # the last hour, as fast as possible
//	devicesim -devices 50 -duration 30m -speed 60 \
//	    -mqtt tcp://127.0.0.1:1883 -fault leak:3@5m            # live, a leak on keg-0004, commands obeyed
//	devicesim -stream "" -jsonl - -duration 5m                 # JSON lines on stdout only
//	devicesim -batch 10                                        # ten readings a message: a tenth of the IoT Core messages
//
// Faults: -fault KIND:DEVICE[@FROM] or KIND:FRACTION[@FROM], repeatable;
// kinds: leak, cooler-failure, offline, gas-empty, sensor-glitch,
// stuck-sensor, clock-skew, duplicate. Endpoints and credentials: -endpoint
// or TAPLINE_ENDPOINTS_KINESIS, then the SDK's default chain. For AWS IoT
// Core give -mqtt ssl://ENDPOINT:8883 with -mqtt-cert, -mqtt-key, -mqtt-ca.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapline/tapline/cmd/internal/demo"
	"github.com/tapline/tapline/cmd/internal/fleet"
	"github.com/tapline/tapline/cmd/internal/sim"
	"github.com/tapline/tapline/sinks/command"
)

type faults []fleet.Fault

func (f *faults) String() string { return fmt.Sprint(*f) }

// Set parses KIND:DEVICE[@FROM] or KIND:FRACTION[@FROM].
func (f *faults) Set(s string) error {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return errors.New("want KIND:DEVICE[@FROM] or KIND:FRACTION[@FROM]")
	}
	var fl fleet.Fault
	fl.Kind = fleet.FaultKind(kind)
	switch fl.Kind {
	case fleet.Leak, fleet.CoolerFailure, fleet.Offline, fleet.GasEmpty, fleet.SensorGlitch, fleet.StuckSensor, fleet.ClockSkew, fleet.Duplicate:
	default:
		return fmt.Errorf("unknown fault %q", kind)
	}
	who, from, hasFrom := strings.Cut(rest, "@")
	if hasFrom {
		d, err := time.ParseDuration(from)
		if err != nil {
			return err
		}
		fl.From = d
	}
	if strings.Contains(who, ".") {
		v, err := strconv.ParseFloat(who, 64)
		if err != nil || v <= 0 || v > 1 {
			return fmt.Errorf("fraction %q must be in (0, 1]", who)
		}
		fl.Fraction = v
	} else {
		n, err := strconv.Atoi(who)
		if err != nil || n < 0 {
			return fmt.Errorf("device %q must be an index >= 0", who)
		}
		fl.Device = n
	}
	*f = append(*f, fl)
	return nil
}

func main() {
	var fs faults
	stream := flag.String("stream", envOr("TAPLINE_STREAM", "telemetry"), "Kinesis stream (TAPLINE_STREAM); empty: no Kinesis output")
	endpoint := flag.String("endpoint", os.Getenv("TAPLINE_ENDPOINTS_KINESIS"), "Kinesis endpoint URL; empty: AWS (TAPLINE_ENDPOINTS_KINESIS)")
	devices := flag.Int("devices", 200, "simulated devices")
	profile := flag.String("profile", "keg", "device profile: keg or sensor (temperature, humidity, battery)")
	duration := flag.Duration("duration", time.Hour, "event time to simulate, ending about now")
	speed := flag.Float64("speed", 0, "simulated seconds per real second; 0: as fast as possible")
	rate := flag.Int("rate", 0, "at most this many records per second to Kinesis; 0: unlimited")
	seed := flag.Uint64("seed", 1, "random seed")
	badRate := flag.Float64("bad-rate", 0.001, "share of malformed payloads")
	mqttURL := flag.String("mqtt", "", "MQTT broker (tcp://host:1883 or ssl://host:8883): commands in, shadow state out")
	mqttTelemetry := flag.Bool("mqtt-telemetry", false, "also publish telemetry to tapline/telemetry/{device}")
	cert := flag.String("mqtt-cert", "", "device certificate (PEM) for AWS IoT Core")
	key := flag.String("mqtt-key", "", "device private key (PEM)")
	ca := flag.String("mqtt-ca", "", "CA certificate (PEM), e.g. AmazonRootCA1.pem")
	jsonl := flag.String("jsonl", "", "write telemetry as JSON lines to this file (- for stdout)")
	batch := flag.Int("batch", 0, "send each keg's readings N at a time, one message of readings (0 or 1: one reading a message)")
	flag.Var(&fs, "fault", "KIND:DEVICE[@FROM] or KIND:FRACTION[@FROM] (repeatable)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *profile != "keg" && *profile != fleet.Sensor {
		fmt.Fprintln(os.Stderr, "devicesim: -profile must be keg or sensor")
		os.Exit(2)
	}
	if *profile == "keg" {
		*profile = fleet.Keg
	}
	if *batch < 0 || *batch > 1000 {
		fmt.Fprintln(os.Stderr, "devicesim: -batch must be 0..1000")
		os.Exit(2)
	}
	if err := run(ctx, *profile, *stream, *endpoint, *devices, *duration, *speed, *rate, *seed, *badRate, *batch, *mqttURL, *mqttTelemetry, *cert, *key, *ca, *jsonl, fs); err != nil {
		fmt.Fprintln(os.Stderr, "devicesim:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, profile, stream, endpoint string, devices int, duration time.Duration, speed float64, rate int, seed uint64,
	badRate float64, batch int, mqttURL string, mqttTelemetry bool, cert, key, ca, jsonl string, fs faults) error {
	if devices < 1 || duration <= 0 || speed < 0 {
		return fmt.Errorf("need devices >= 1, duration > 0, speed >= 0")
	}
	// Event time ends about now, so no record lies in the future (the
	// pipeline rejects records ahead of their arrival).
	start := time.Now().Add(-duration).Truncate(time.Minute)
	for i := range fs {
		fs[i].Device %= devices
	}
	o := sim.Options{
		Fleet:    fleet.Options{Profile: profile, Devices: devices, Start: start, Seed: seed, Faults: fs, BadRate: badRate, LateRate: 0.0005, JitterRate: 0.02, Batch: batch},
		Duration: duration, Speed: speed, Stream: stream, MaxRate: rate,
		OnCommand: func(c command.Command, changed bool, err error) {
			switch {
			case err != nil:
				fmt.Fprintf(os.Stderr, "devicesim: %s ignored command %s: %v\n", c.DeviceID, c.ID, err)
			case changed:
				fmt.Fprintf(os.Stderr, "devicesim: %s applied %s %v (%s)\n", c.DeviceID, c.Action, c.Desired, c.Reason)
			default:
				fmt.Fprintf(os.Stderr, "devicesim: %s already applied command %s\n", c.DeviceID, c.ID)
			}
		},
	}
	if stream != "" {
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return err
		}
		if endpoint != "" {
			cfg.BaseEndpoint = aws.String(endpoint)
		}
		o.Kinesis = kinesis.NewFromConfig(cfg)
	}
	if mqttURL != "" {
		c, err := dial(mqttURL, cert, key, ca)
		if err != nil {
			return err
		}
		defer c.Disconnect(250)
		o.MQTT, o.MQTTTelemetry = c, mqttTelemetry
	}
	switch jsonl {
	case "":
	case "-":
		o.JSONL = os.Stdout
	default:
		f, err := os.Create(jsonl)
		if err != nil {
			return err
		}
		defer f.Close()
		o.JSONL = f
	}
	var sent atomic.Int64
	began := time.Now()
	if demo.IsTerminal(os.Stderr) {
		o.OnTick = progress(&sent, began)
	}
	st, err := sim.Run(ctx, o)
	if o.OnTick != nil {
		fmt.Fprintln(os.Stderr)
	}
	out := io.Writer(os.Stderr)
	fmt.Fprintf(out, "devicesim: %d records from %d kegs (%s of event time from %s) in %v; %d retried; commands %d (applied %d, ignored %d)\n",
		st.Records, devices, duration, start.Format(time.RFC3339), time.Since(began).Round(time.Millisecond), st.Retried, st.Commands, st.Applied, st.Ignored)
	return err
}

func progress(sent *atomic.Int64, began time.Time) func(time.Time, time.Time) {
	next := began
	return func(event, now time.Time) {
		if now.Before(next) {
			return
		}
		next = now.Add(time.Second)
		fmt.Fprintf(os.Stderr, "\r  event time %s  elapsed %v", event.Format(time.TimeOnly), now.Sub(began).Round(time.Second))
	}
}

// dial connects to the broker; with certificates, by mutual TLS as AWS
// IoT Core requires.
func dial(url, cert, key, ca string) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("devicesim-%d", os.Getpid())).
		SetConnectTimeout(10 * time.Second).SetAutoReconnect(true)
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, err
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s: no certificate", ca)
			}
		}
		o.SetTLSConfig(cfg)
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt %s: %v", url, tok.Error())
	}
	return c, nil
}
