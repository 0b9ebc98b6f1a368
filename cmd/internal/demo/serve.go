package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tapline/tapline/cmd/internal/dashboard"
	"github.com/tapline/tapline/deploy/local/mqttbroker"
	"github.com/tapline/tapline/sinks/command"
	"github.com/tapline/tapline/sinks/live"
)

// liveApp is the demo's application name in the live topics.
const liveApp = "demo"

// dashServer is the demo's dashboard: the broker (TCP and WebSockets, as
// IoT Core offers both), the live publisher and the page.
type dashServer struct {
	broker   atomic.Pointer[mqttbroker.Broker]
	pub      *live.Publisher
	http     *http.Server
	URL      string // the page
	requests chan request
	cancel   context.CancelFunc
	// browser is closed when the first page subscribes.
	browser     chan struct{}
	browserOnce sync.Once
}

// request is an operator's command request from the page.
type request struct {
	RequestID string `json:"request_id"`
	DeviceID  string `json:"device_id"`
	Action    string `json:"action"`
	Operator  string `json:"operator"`
}

// serve starts the dashboard on addr (host:port; port 0 picks one) and
// the broker on free loopback ports, or on brokerAddr and wsAddr when
// set (a test restarting the broker needs the same ports).
func serve(ctx context.Context, addr, brokerAddr, wsAddr string, policy *command.Policy) (*dashServer, error) {
	if wsAddr == "" {
		wsAddr = "auto"
	}
	root := live.Topic(liveApp, "")
	s := &dashServer{requests: make(chan request, 64), browser: make(chan struct{})}
	b, err := mqttbroker.StartWith(mqttbroker.Options{Addr: brokerAddr, WSAddr: wsAddr, LiveRoot: root, OnBrowser: s.onBrowser})
	if err != nil {
		return nil, err
	}
	s.broker.Store(b)
	ctx, s.cancel = context.WithCancel(ctx)
	s.pub, err = live.New(live.Options{App: liveApp, Send: func(_ context.Context, topic string, payload []byte) error {
		return s.broker.Load().Server().Publish(topic, payload, false, 0)
	}})
	if err != nil {
		b.Stop()
		return nil, err
	}
	if err := s.subscribe(); err != nil {
		b.Stop()
		return nil, err
	}
	go s.pub.Run(ctx)
	_, port, _ := net.SplitHostPort(b.WSURL[len("ws://"):])
	wsPort, _ := strconv.Atoi(port)
	actions := make([]string, 0, len(policy.Actions))
	for a := range policy.Actions {
		actions = append(actions, a)
	}
	slices.Sort(actions)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.stop()
		return nil, err
	}
	s.http = &http.Server{Handler: dashboard.Handler(dashboard.Config{App: liveApp, Root: root, WSPort: wsPort, Actions: actions, Metric: "temp_c"}), ReadHeaderTimeout: 5 * time.Second}
	go s.http.Serve(ln)
	host := ln.Addr().(*net.TCPAddr)
	if host.IP.IsUnspecified() {
		s.URL = fmt.Sprintf("http://localhost:%d/", host.Port)
	} else {
		s.URL = fmt.Sprintf("http://%s/", host)
	}
	return s, nil
}

func (s *dashServer) onBrowser(string) { s.browserOnce.Do(func() { close(s.browser) }) }

// subscribe listens, in process, for the page's command requests. A
// request that is not one (too large, not JSON, unknown fields) is
// dropped here; the policy judges the rest in the loop.
func (s *dashServer) subscribe() error {
	return s.broker.Load().Server().Subscribe(live.Topic(liveApp, "command-request"), 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if len(pk.Payload) > 1024 {
			return
		}
		var r request
		dec := json.NewDecoder(bytes.NewReader(pk.Payload))
		dec.DisallowUnknownFields()
		if dec.Decode(&r) != nil {
			return
		}
		select {
		case s.requests <- r:
		default: // the loop is behind: the page shows no outcome and may ask again
		}
	})
}

// restartBroker stops the broker and starts it again on the same ports:
// what the browser test does to see the page reconnect.
func (s *dashServer) restartBroker() error {
	old := s.broker.Load()
	addr, ws := old.URL[len("tcp://"):], old.WSURL[len("ws://"):]
	old.Stop()
	for i := 0; ; i++ {
		b, err := mqttbroker.StartWith(mqttbroker.Options{Addr: addr, WSAddr: ws, LiveRoot: live.Topic(liveApp, ""), OnBrowser: s.onBrowser})
		if err == nil {
			s.broker.Store(b)
			return s.subscribe()
		}
		if i == 50 {
			return err
		}
		time.Sleep(100 * time.Millisecond) // the old listeners' ports are being released
	}
}

func (s *dashServer) stop() {
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.http.Shutdown(ctx)
		cancel()
	}
	s.cancel()
	s.broker.Load().Stop()
}
