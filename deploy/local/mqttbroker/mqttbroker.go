// Package mqttbroker runs mochi-mqtt, the MQTT broker standing in for AWS
// IoT Core's message broker in tapline's tests and local stack, in
// process on a loopback port. It accepts any client (the local stack has
// no device certificates).
package mqttbroker

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/tapline/tapline/deploy/local/server"
)

// Broker is a running broker.
type Broker struct {
	URL string // tcp://127.0.0.1:PORT
	srv *mqtt.Server
}

// Start serves MQTT 3.1.1 and 5 on addr ("" for a free loopback port).
func Start(addr string) (*Broker, error) {
	if addr == "" {
		var err error
		if addr, err = server.FreeAddr(); err != nil {
			return nil, err
		}
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, err
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("mqttbroker: %w", err)
	}
	return &Broker{URL: "tcp://" + addr, srv: srv}, nil
}

// Stop closes the broker.
func (b *Broker) Stop() { b.srv.Close() }
