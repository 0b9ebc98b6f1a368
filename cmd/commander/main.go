// Command commander is the command Lambda: subscribed to tapline's SNS
// alert topic, it turns alerts into commands to devices by the command
// policy (command.Default, embedded; TAPLINE_COMMAND_POLICY names another
// file), and operators POST {"device_id","action","request_id"} to its
// IAM-authenticated function URL. See package sinks/command.
//
// Environment:
//
//	TAPLINE_ALERTS_TOPIC_ARN   tapline's alerts topic: SNS records from any other are refused (required)
//	TAPLINE_THING_PREFIX       commands go only to things whose name starts with it (the stack's)
//	TAPLINE_ALERT_MAC_KEY      the service's alert MAC key (sns.mac_key): unsigned alerts are refused (required)
//	TAPLINE_COMMAND_BACKEND    shadow (default: UpdateThingShadow), topic (IoT Publish) or mqtt
//	TAPLINE_MQTT_URL           broker for the mqtt backend (the local stack's)
//	TAPLINE_ENDPOINTS_IOTDATA  the IoT data plane endpoint (account-specific on AWS:
//	                           https://{prefix}-ats.iot.{region}.amazonaws.com)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iotdataplane"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/command"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	h, err := newHandler(context.Background(), log)
	if err != nil {
		log.Error("commander: cannot start", "err", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

func newHandler(ctx context.Context, log *slog.Logger) (*command.Handler, error) {
	var p *command.Policy
	var err error
	if path := os.Getenv("TAPLINE_COMMAND_POLICY"); path != "" {
		p, err = command.LoadPolicy(path)
	} else {
		p = command.Default()
	}
	if err != nil {
		return nil, err
	}
	topic := os.Getenv("TAPLINE_ALERTS_TOPIC_ARN")
	if topic == "" {
		return nil, fmt.Errorf("TAPLINE_ALERTS_TOPIC_ARN is required: alerts from any other topic are refused")
	}
	p.ThingPrefix = os.Getenv("TAPLINE_THING_PREFIX")
	macKey := os.Getenv("TAPLINE_ALERT_MAC_KEY")
	if len(macKey) < schemas.MinMACKey {
		return nil, fmt.Errorf("TAPLINE_ALERT_MAC_KEY is required (at least %d bytes): alerts are authenticated with it", schemas.MinMACKey)
	}
	var d command.Deliverer
	switch backend := os.Getenv("TAPLINE_COMMAND_BACKEND"); backend {
	case "mqtt":
		url := os.Getenv("TAPLINE_MQTT_URL")
		if url == "" {
			return nil, fmt.Errorf("TAPLINE_MQTT_URL is required for the mqtt backend")
		}
		c, err := command.DialMQTT(url, "tapline-commander-"+fmt.Sprint(os.Getpid()))
		if err != nil {
			return nil, err
		}
		d = command.MQTT{Client: c}
	case "", "shadow", "topic":
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		if ep := os.Getenv("TAPLINE_ENDPOINTS_IOTDATA"); ep != "" {
			cfg.BaseEndpoint = aws.String(ep)
		}
		client := iotdataplane.NewFromConfig(cfg)
		d = command.Shadow{Client: client}
		if backend == "topic" {
			d = command.IoTTopic{Client: client}
		}
	default:
		return nil, fmt.Errorf("TAPLINE_COMMAND_BACKEND %q is not shadow, topic or mqtt", backend)
	}
	return &command.Handler{Policy: p, Deliver: d, Log: log, TopicARN: topic, MACKey: []byte(macKey)}, nil
}
