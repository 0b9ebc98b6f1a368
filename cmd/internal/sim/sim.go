// Package sim runs a simulated fleet (package fleet) live: it sends each
// tick's telemetry to Kinesis (as IoT Core's topic rule would), to MQTT
// and/or as JSON lines, and listens on MQTT for commands (the command
// topic and the shadow delta), which the kegs apply between ticks and
// acknowledge by reporting their state to their shadow.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapline/tapline/cmd/internal/fleet"
	"github.com/tapline/tapline/sinks/command"
)

// Options configure a run.
type Options struct {
	Fleet    fleet.Options
	Duration time.Duration // event time to simulate
	Speed    float64       // simulated seconds per real second; 0: as fast as possible

	Kinesis *kinesis.Client // nil: no Kinesis output
	Stream  string
	MaxRate int // records per second to Kinesis; 0: unlimited

	MQTT          mqtt.Client // commands in; telemetry out with MQTTTelemetry
	MQTTTelemetry bool        // publish telemetry to tapline/telemetry/{device}
	JSONL         io.Writer   // nil: no JSON lines

	// OnTick is called after each tick is sent, with its event time and
	// the wall time it was sent. Optional.
	OnTick func(eventTime, sent time.Time)
	// OnStart is called once the kegs listen for commands. Optional.
	OnStart func()
	// OnCommand is called for each command received, with whether the keg
	// changed and why not. Optional.
	OnCommand func(c command.Command, changed bool, err error)
}

// Stats count a run.
type Stats struct {
	Records, Retried, Commands, Applied, Ignored int
}

// TelemetryTopic is where a device publishes its telemetry; the IoT rule
// selects from tapline/telemetry/+.
func TelemetryTopic(deviceID string) string { return "tapline/telemetry/" + deviceID }

// Run simulates until Duration of event time has passed or ctx ends.
func Run(ctx context.Context, o Options) (Stats, error) {
	var st Stats
	fl := fleet.New(o.Fleet)
	cmds := make(chan command.Command, 256)
	if o.MQTT != nil {
		if err := subscribe(o.MQTT, cmds); err != nil {
			return st, err
		}
	}
	if o.OnStart != nil {
		o.OnStart()
	}
	began := time.Now()
	var batch []fleet.Record
	for fl.Elapsed() < o.Duration {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		// Commands received since the last tick take effect now.
	drain:
		for {
			select {
			case c := <-cmds:
				st.Commands++
				changed, err := fl.Apply(&c)
				if err != nil {
					st.Ignored++
				} else if changed {
					st.Applied++
				}
				if o.MQTT != nil && err == nil {
					report(o.MQTT, c.DeviceID, fl.Reported(c.DeviceID))
				}
				if o.OnCommand != nil {
					o.OnCommand(c, changed, err)
				}
			default:
				break drain
			}
		}
		var tick time.Time
		batch, tick = fl.Step(batch[:0])
		if err := o.send(ctx, batch, &st); err != nil {
			return st, err
		}
		if o.OnTick != nil {
			o.OnTick(tick, time.Now())
		}
		if o.Speed > 0 {
			time.Sleep(time.Until(began.Add(time.Duration(float64(fl.Elapsed()) / o.Speed))))
		}
	}
	// Batched readings not yet sent go now, as devices send theirs
	// when they stop.
	return st, o.send(ctx, fl.Flush(batch[:0]), &st)
}

func (o *Options) send(ctx context.Context, batch []fleet.Record, st *Stats) error {
	for _, r := range batch {
		if o.JSONL != nil {
			if _, err := fmt.Fprintf(o.JSONL, "%s\n", r.Data); err != nil {
				return err
			}
		}
		if o.MQTT != nil && o.MQTTTelemetry {
			o.MQTT.Publish(TelemetryTopic(r.Device), 0, false, r.Data)
		}
	}
	st.Records += len(batch)
	if o.Kinesis == nil {
		return nil
	}
	for len(batch) > 0 {
		n := min(len(batch), 500)
		if err := o.put(ctx, batch[:n], st); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// put sends up to 500 records, retrying the entries a response reports
// failed (throttling) with backoff, at most MaxRate records a second.
func (o *Options) put(ctx context.Context, recs []fleet.Record, st *Stats) error {
	wait := 50 * time.Millisecond
	for attempt := 0; len(recs) > 0; attempt++ {
		if attempt > 8 {
			return fmt.Errorf("sim: %d records still failing after %d attempts", len(recs), attempt)
		}
		entries := make([]ktypes.PutRecordsRequestEntry, len(recs))
		for i, r := range recs {
			entries[i] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(r.Device), Data: r.Data}
		}
		t0 := time.Now()
		out, err := o.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(o.Stream), Records: entries})
		if err != nil {
			return err
		}
		var failed []fleet.Record
		for i, e := range out.Records {
			if e.ErrorCode != nil {
				failed = append(failed, recs[i])
			}
		}
		if o.MaxRate > 0 {
			time.Sleep(time.Until(t0.Add(time.Duration(len(recs)) * time.Second / time.Duration(o.MaxRate))))
		}
		if len(failed) > 0 {
			st.Retried += len(failed)
			time.Sleep(wait)
			wait = min(2*wait, 2*time.Second)
		}
		recs = failed
	}
	return nil
}

// subscribe listens to every device's command topic and shadow delta.
func subscribe(c mqtt.Client, out chan<- command.Command) error {
	var mu sync.Mutex
	push := func(cmd command.Command) {
		mu.Lock()
		defer mu.Unlock()
		select {
		case out <- cmd:
		default: // a flood of commands: the device drops what it cannot hold
		}
	}
	onCommand := func(_ mqtt.Client, m mqtt.Message) {
		var cmd command.Command
		if json.Unmarshal(m.Payload(), &cmd) != nil || command.Topic(cmd.DeviceID) != m.Topic() {
			return // not for this device: ignored
		}
		push(cmd)
	}
	onDelta := func(_ mqtt.Client, m mqtt.Message) {
		// $aws/things/{thing}/shadow/update/delta
		parts := strings.Split(m.Topic(), "/")
		if len(parts) != 6 {
			return
		}
		var d command.ShadowDelta
		if json.Unmarshal(m.Payload(), &d) != nil || d.ClientToken == "" {
			return
		}
		push(command.Command{ID: d.ClientToken, DeviceID: parts[2], Action: "shadow_delta", Desired: d.State})
	}
	for topic, h := range map[string]mqtt.MessageHandler{command.TopicFilter: onCommand, "$aws/things/+/shadow/update/delta": onDelta} {
		if tok := c.Subscribe(topic, 1, h); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return errors.Join(fmt.Errorf("sim: subscribe %s", topic), tok.Error())
		}
	}
	return nil
}

// report publishes a keg's state to its shadow, as a device does after
// applying a command.
func report(c mqtt.Client, deviceID string, state map[string]string) {
	b, _ := json.Marshal(map[string]any{"state": map[string]any{"reported": state}})
	c.Publish("$aws/things/"+deviceID+"/shadow/update", 1, false, b)
}
