// Command devicesim simulates a fleet of smart kegs (package fleet: pours,
// cooling, CO2, faults, bad and late payloads) and sends its telemetry
// where IoT Core's topic rule would: a Kinesis stream, one PutRecords call
// per simulated tick, partitioned by device id.
//
//	devicesim -stream telemetry -devices 200 -duration 1h
//
// The endpoint comes from -endpoint or TAPLINE_ENDPOINTS_KINESIS (the
// local stack's, printed by make stack-up); credentials and region from
// the SDK's default chain.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/tapline/tapline/cmd/internal/fleet"
	"github.com/tapline/tapline/deploy/local/stack"
)

func main() {
	stream := flag.String("stream", envOr("TAPLINE_STREAM", "telemetry"), "Kinesis stream (TAPLINE_STREAM)")
	endpoint := flag.String("endpoint", os.Getenv("TAPLINE_ENDPOINTS_KINESIS"), "Kinesis endpoint URL; empty: AWS (TAPLINE_ENDPOINTS_KINESIS)")
	devices := flag.Int("devices", 200, "simulated kegs")
	duration := flag.Duration("duration", time.Hour, "event time to simulate, ending now")
	speed := flag.Float64("speed", 0, "simulated seconds per real second; 0: as fast as possible")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *stream, *endpoint, *devices, *duration, *speed, *seed); err != nil {
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

func run(ctx context.Context, stream, endpoint string, devices int, duration time.Duration, speed float64, seed uint64) error {
	if devices < 1 || duration <= 0 || speed < 0 {
		return fmt.Errorf("need devices >= 1, duration > 0, speed >= 0")
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	k := kinesis.NewFromConfig(cfg)
	start := time.Now().Add(-duration).Truncate(time.Minute)
	fl := fleet.New(fleet.Options{Devices: devices, Start: start, Seed: seed,
		Faults: []fleet.Fault{
			{Kind: fleet.Leak, Device: 1 % devices, From: duration / 4},
			{Kind: fleet.CoolerFailure, Device: 2 % devices, From: duration / 3},
			{Kind: fleet.Offline, Device: 3 % devices, From: duration / 2},
		},
		BadRate: 0.001, LateRate: 0.0005, JitterRate: 0.02})
	began := time.Now()
	var sent int
	var batch []fleet.Record
	for fl.Elapsed() < duration {
		batch, _ = fl.Step(batch[:0])
		recs := make([]stack.Record, len(batch))
		for i, r := range batch {
			recs[i] = stack.Record{Key: r.Device, Data: r.Data}
		}
		if err := stack.Put(ctx, k, stream, recs); err != nil {
			return err
		}
		sent += len(recs)
		if speed > 0 {
			time.Sleep(time.Until(began.Add(time.Duration(float64(fl.Elapsed()) / speed))))
		}
	}
	fmt.Printf("devicesim: sent %d records from %d kegs (%s of event time from %s) to %s in %v\n",
		sent, devices, duration, start.Format(time.RFC3339), stream, time.Since(began).Round(time.Millisecond))
	return nil
}
