package command

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Deliverer sends a validated command to its device.
type Deliverer interface {
	Deliver(ctx context.Context, c *Command) error
}

// Shadow updates the device's shadow (desired state) through the IoT data
// plane, with the command id as clientToken: the device receives the
// delta on $aws/things/{thing}/shadow/update/delta.
type Shadow struct{ Client *iotdataplane.Client }

// Deliver implements Deliverer.
func (s Shadow) Deliver(ctx context.Context, c *Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	doc, err := ShadowUpdate(c)
	if err != nil {
		return err
	}
	_, err = s.Client.UpdateThingShadow(ctx, &iotdataplane.UpdateThingShadowInput{ThingName: aws.String(c.DeviceID), Payload: doc})
	return err
}

// IoTTopic publishes the command to the device's command topic through the
// IoT data plane (QoS 1).
type IoTTopic struct{ Client *iotdataplane.Client }

// Deliver implements Deliverer.
func (t IoTTopic) Deliver(ctx context.Context, c *Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = t.Client.Publish(ctx, &iotdataplane.PublishInput{Topic: aws.String(Topic(c.DeviceID)), Qos: 1, Payload: b})
	return err
}

// MQTT publishes the command to the device's command topic on an MQTT
// broker (QoS 1): the local stack's stand-in for the IoT data plane.
type MQTT struct{ Client mqtt.Client }

// DialMQTT connects to broker ("tcp://127.0.0.1:1883") as clientID.
func DialMQTT(broker, clientID string) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).
		SetConnectTimeout(10 * time.Second).SetAutoReconnect(true)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt: connect %s: %v", broker, tok.Error())
	}
	return c, nil
}

// Deliver implements Deliverer.
func (m MQTT) Deliver(ctx context.Context, c *Command) error {
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tok := m.Client.Publish(Topic(c.DeviceID), 1, false, b)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
