// Package goaws starts goaws, the SNS server tapline's tests talk to, on a
// loopback port with the topics and HTTP subscriptions the caller asks
// for. The binary is built from the version pinned in deploy/tools/go.mod
// into .tools/bin by `make local-stack` (part of `make test`). goaws
// supports Publish with attributes and HTTP subscriptions; it has no
// PublishBatch.
package goaws

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/tapline/tapline/deploy/local/server"
)

// Region and account of the topics' ARNs.
const (
	Region  = "us-east-1"
	Account = "100010001000"
)

// ErrUnavailable says the binary is missing: run `make local-stack`.
var ErrUnavailable = server.ErrMissing

// TopicARN is the ARN goaws gives a topic.
func TopicARN(name string) string { return "arn:aws:sns:" + Region + ":" + Account + ":" + name }

// Start runs goaws with one topic per entry of topics, each subscribed by
// HTTP to the given endpoint URLs (raw delivery off: subscribers receive
// the SNS notification envelope). dir holds the generated config.
func Start(dir string, topics map[string][]string) (*server.Server, error) {
	addr, err := server.FreeAddr()
	if err != nil {
		return nil, err
	}
	bin, args, err := Command(addr, dir, topics)
	if err != nil {
		return nil, err
	}
	return server.Start(bin, args, addr)
}

// Command writes the config for addr and topics into dir and returns the
// command line.
func Command(addr, dir string, topics map[string][]string) (string, []string, error) {
	bin, err := server.Binary("goaws", "TAPLINE_GOAWS")
	if err != nil {
		return "", nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	var b strings.Builder
	fmt.Fprintf(&b, "Local:\n  Host: 127.0.0.1\n  Port: %s\n  Region: %s\n  AccountId: \"%s\"\n  LogToFile: false\n  Queues: []\n  Topics:\n", port, Region, Account)
	for name, endpoints := range topics {
		fmt.Fprintf(&b, "    - Name: %s\n", name)
		if len(endpoints) > 0 {
			b.WriteString("      Subscriptions:\n")
			for _, ep := range endpoints {
				fmt.Fprintf(&b, "        - Protocol: http\n          EndPoint: %s\n          TopicArn: %s\n          Raw: false\n", ep, TopicARN(name))
			}
		}
	}
	conf := filepath.Join(dir, "goaws.yaml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return "", nil, err
	}
	return bin, []string{"-config", conf, "Local"}, nil
}
