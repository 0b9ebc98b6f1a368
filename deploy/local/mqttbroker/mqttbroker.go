// Package mqttbroker runs mochi-mqtt, the MQTT broker standing in for AWS
// IoT Core's message broker in tapline's tests, local stack and demo, in
// process on loopback ports. Clients on its TCP listener may do anything
// (the local stack has no device certificates). Clients on its WebSocket
// listener are browsers showing the dashboard, and get what IoT Core's
// dashboard role gets: subscribe to the live topics and publish operator
// command requests, nothing else (never a device's command topic).
package mqttbroker

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tapline/tapline/deploy/local/server"
)

// Broker is a running broker.
type Broker struct {
	URL   string // tcp://127.0.0.1:PORT
	WSURL string // ws://127.0.0.1:PORT, when a WebSocket listener was asked for
	srv   *mqtt.Server
}

// Options choose the listeners.
type Options struct {
	Addr string // TCP; "" for a free loopback port
	// WSAddr, if set, adds a WebSocket listener ("auto": a free loopback
	// port) for browsers, restricted to the topics under LiveRoot.
	WSAddr string
	// LiveRoot is what browsers may subscribe under ("tapline/live/demo/");
	// they may publish to LiveRoot+"command-request" only.
	LiveRoot string
	// OnBrowser, if set, is called when a browser subscribes.
	OnBrowser func(filter string)
}

// Start serves MQTT 3.1.1 and 5 on addr ("" for a free loopback port).
func Start(addr string) (*Broker, error) { return StartWith(Options{Addr: addr}) }

// StartWith starts a broker with o's listeners.
func StartWith(o Options) (*Broker, error) {
	free := func(a string) (string, error) {
		if a == "" || a == "auto" {
			return server.FreeAddr()
		}
		return a, nil
	}
	addr, err := free(o.Addr)
	if err != nil {
		return nil, err
	}
	// Errors only: a connect, disconnect or closed WebSocket per line would
	// drown the demo's output.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: logger})
	if err := srv.AddHook(&access{root: o.LiveRoot, onBrowser: o.OnBrowser}, nil); err != nil {
		return nil, err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, err
	}
	b := &Broker{URL: "tcp://" + addr, srv: srv}
	if o.WSAddr != "" {
		if o.LiveRoot == "" || !strings.HasSuffix(o.LiveRoot, "/") || strings.ContainsAny(o.LiveRoot, "+#") {
			return nil, fmt.Errorf("mqttbroker: LiveRoot %q must be a topic prefix ending in /", o.LiveRoot)
		}
		ws, err := free(o.WSAddr)
		if err != nil {
			return nil, err
		}
		if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: ws})); err != nil {
			return nil, err
		}
		b.WSURL = "ws://" + ws
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("mqttbroker: %w", err)
	}
	return b, nil
}

// Server is the broker, for in-process publishing and subscribing.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// Stop closes the broker.
func (b *Broker) Stop() { b.srv.Close() }

// access lets TCP and in-process clients do anything and browsers (the
// WebSocket listener) only read the live topics and ask for commands.
type access struct {
	mqtt.HookBase
	root      string
	onBrowser func(string)
}

func (a *access) ID() string { return "tapline-access" }

func (a *access) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (a *access) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (a *access) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Listener != "ws" {
		return true
	}
	if write {
		return topic == a.root+"command-request"
	}
	ok := strings.HasPrefix(topic, a.root)
	if ok && a.onBrowser != nil {
		a.onBrowser(topic)
	}
	return ok
}
