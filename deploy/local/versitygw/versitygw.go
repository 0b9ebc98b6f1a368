// Package versitygw starts versitygw, the S3 server tapline's tests talk
// to, on a loopback port with a posix backend in a directory the caller
// owns. The binary is built from the version pinned in deploy/tools/go.mod
// into .tools/bin by `make local-stack` (part of `make test`).
package versitygw

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"
)

// Credentials of the root user the server is started with.
const (
	AccessKey = "tapline-test"
	SecretKey = "tapline-test-secret"
	Region    = "us-east-1"
)

// ErrUnavailable says the binary is missing: run `make local-stack`.
var ErrUnavailable = errors.New("versitygw: binary missing (run make local-stack, which builds it into .tools/bin)")

// Binary is the path of the versitygw binary: $TAPLINE_VERSITYGW, or
// .tools/bin/versitygw at the repository root.
func Binary() (string, error) {
	if p := os.Getenv("TAPLINE_VERSITYGW"); p != "" {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", ".tools", "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return p, nil
}

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	done     chan error
}

// Start runs versitygw serving root (its buckets are root's directories)
// and waits until it accepts connections.
func Start(root string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--port", addr, "--access", AccessKey, "--secret", SecretKey, "--region", Region, "--quiet", "posix", root)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("versitygw: %w", err)
	}
	s := &Server{Endpoint: "http://" + addr, cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("versitygw exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw: not listening on %s after 15s", addr)
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
