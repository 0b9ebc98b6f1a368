package benchmarks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tapline/tapline/deploy/local/mqttbroker"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/sinks/live"
	"github.com/tapline/tapline/windows"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLiveFanout: 100 dashboard subscribers on the broker's
// WebSocket listener, the live publisher sending 1,000 window summaries a
// second for 5 s, batched as the publisher does (issue 19's goal: at
// most 10% of a core). The
// subscribers (paho clients, as a browser's MQTT client) run in a child
// process, so the CPU reported (as a share of one core) is the broker's
// and the publisher's alone; deliveries/s counts the window summaries
// the subscribers received.
func BenchmarkLiveFanout(b *testing.B) {
	const subscribers, rate, seconds = 100, 1000, 5
	for range b.N {
		broker, err := mqttbroker.StartWith(mqttbroker.Options{WSAddr: "auto", LiveRoot: live.Topic("bench", "")})
		if err != nil {
			b.Fatal(err)
		}
		want := subscribers * rate * seconds
		child := exec.Command(os.Args[0], "-test.run", "^TestFanoutSubscribers$")
		child.Env = append(os.Environ(), "TAPLINE_FANOUT_URL="+broker.WSURL, fmt.Sprint("TAPLINE_FANOUT_N=", subscribers), fmt.Sprint("TAPLINE_FANOUT_WANT=", want))
		out, _ := child.StdoutPipe()
		child.Stderr = os.Stderr
		server.KillWithParent(child)
		if err := child.Start(); err != nil {
			b.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		if !lines.Scan() || lines.Text() != "ready" {
			b.Fatalf("subscribers: %q", lines.Text())
		}
		pub, _ := live.New(live.Options{App: "bench", Budget: 2 * rate, PerDevice: time.Millisecond, Send: func(_ context.Context, topic string, payload []byte) error {
			return broker.Server().Publish(topic, payload, false, 0)
		}})
		ctx, cancel := context.WithCancel(context.Background())
		go pub.Run(ctx)
		spec, _ := windows.ParseSpec("1m")
		w := &windows.Window{Spec: &spec, Start: 1_795_802_400_000, End: 1_795_802_460_000, Metric: "temp_c", Agg: windows.Agg{Count: 60, Min: 3.1, Mean: 3.5, Max: 4.2}}
		devices := make([]string, 500)
		for i := range devices {
			devices[i] = fmt.Sprintf("keg-%04d", i)
		}
		cpu0, t0 := cpuTime(), time.Now()
		// Ten windows every 10 ms: the rate, without a timer wake-up per
		// window (a shard calls Window inline, between records).
		tick := time.NewTicker(10 * time.Millisecond)
		for i := 0; i < rate*seconds; i++ {
			if i%10 == 0 {
				<-tick.C
			}
			w.DeviceID = devices[i%len(devices)]
			pub.Window(w)
		}
		tick.Stop()
		var got int
		if lines.Scan() {
			fmt.Sscan(lines.Text(), &got)
		}
		wall, cpu := time.Since(t0), cpuTime()-cpu0
		child.Wait()
		cancel()
		broker.Stop()
		if got < want*99/100 {
			b.Fatalf("%d of %d deliveries (publisher %+v)", got, want, pub.Counters())
		}
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "core-%")
		b.ReportMetric(float64(got)/wall.Seconds(), "deliveries/s")
	}
}

// TestFanoutSubscribers is BenchmarkLiveFanout's child: it connects the
// subscribers, says "ready", and prints how many messages they received
// once they have all or 15 s have passed. It does nothing on its own.
func TestFanoutSubscribers(t *testing.T) {
	url := os.Getenv("TAPLINE_FANOUT_URL")
	if url == "" {
		t.Skip("run by BenchmarkLiveFanout")
	}
	var n, want int
	fmt.Sscan(os.Getenv("TAPLINE_FANOUT_N"), &n)
	fmt.Sscan(os.Getenv("TAPLINE_FANOUT_WANT"), &want)
	var received atomic.Int64
	for i := range n {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprint("sub-", i)).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscriber %d: %v", i, tok.Error())
		}
		count := func(_ paho.Client, m paho.Message) {
			var ws []live.Window
			if json.Unmarshal(m.Payload(), &ws) == nil {
				received.Add(int64(len(ws)))
			}
		}
		if tok := c.Subscribe(live.Topic("bench", "#"), 0, count); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %d: %v", i, tok.Error())
		}
		defer c.Disconnect(0)
	}
	fmt.Println("ready")
	for deadline := time.Now().Add(15 * time.Second); received.Load() < int64(want) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(received.Load())
}
