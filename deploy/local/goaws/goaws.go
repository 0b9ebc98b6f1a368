// Package goaws starts goaws, the SNS server tapline's tests talk to, on a
// loopback port with the topics and HTTP subscriptions the caller asks
// for. The binary is built from the version pinned in deploy/tools/go.mod
// into .tools/bin by `make local-stack` (part of `make test`). goaws
// supports Publish with attributes and HTTP subscriptions; it has no
// PublishBatch.
package goaws

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Region and account of the topics' ARNs.
const (
	Region  = "us-east-1"
	Account = "100010001000"
)

// ErrUnavailable says the binary is missing: run `make local-stack`.
var ErrUnavailable = errors.New("goaws: binary missing (run make local-stack, which builds it into .tools/bin)")

// Binary is $TAPLINE_GOAWS or .tools/bin/goaws at the repository root.
func Binary() (string, error) {
	if p := os.Getenv("TAPLINE_GOAWS"); p != "" {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", ".tools", "bin", "goaws")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return p, nil
}

// Server is a running goaws.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	done     chan error
}

// TopicARN is the ARN goaws gives a topic.
func TopicARN(name string) string { return "arn:aws:sns:" + Region + ":" + Account + ":" + name }

// Start runs goaws with one topic per entry of topics, each subscribed by
// HTTP to the given endpoint URLs (raw delivery off: subscribers receive
// the SNS notification envelope). dir holds the generated config.
func Start(dir string, topics map[string][]string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "Local:\n  Host: 127.0.0.1\n  Port: %d\n  Region: %s\n  AccountId: \"%s\"\n  LogToFile: false\n  Queues: []\n  Topics:\n", port, Region, Account)
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
		return nil, err
	}
	cmd := exec.Command(bin, "-config", conf, "Local")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("goaws: %w", err)
	}
	s := &Server{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("goaws exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("goaws: not listening on %s after 15s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server and waits for it. Safe to call twice.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}
