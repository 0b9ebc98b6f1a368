// Package server runs the local stand-ins for AWS services that tapline's
// tests start: a pinned binary from .tools/bin on a free loopback port,
// waited for until it accepts connections, and killed by Stop. Each
// service's package (versitygw, goaws) says how to configure it. On
// Linux a server dies with the process that started it, even one killed
// by a test's timeout.
package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// ErrMissing says part of the local stack is not installed: run `make
// local-stack`. Errors of the stand-ins' packages wrap it.
var ErrMissing = errors.New("not installed (run make local-stack, which installs the pinned local stack)")

// Require ends a test whose local stand-in could not start: outside CI a
// missing installation skips the test with the reason; in CI (CI=true),
// where a missing server is a failure and never a skip, and for any other
// error, the test fails. A nil err does nothing.
func Require(tb testing.TB, err error) {
	if err == nil {
		return
	}
	tb.Helper()
	if errors.Is(err, ErrMissing) && os.Getenv("CI") != "true" {
		tb.Skip(err)
	}
	tb.Fatal(err)
}

// Binary is the path of a pinned tool: $env if set, else
// .tools/bin/name at the repository root.
func Binary(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", ".tools", "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w: %v", name, ErrMissing, err)
	}
	return p, nil
}

// NodeBin is the command line of an npm package's executable pinned in
// deploy/local/package-lock.json (installed by `make local-stack`): node
// and the script under deploy/local/node_modules/.bin.
func NodeBin(name string) (string, []string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", nil, fmt.Errorf("node: %w: %v", ErrMissing, err)
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "node_modules", name, "cli.js")
	if _, err := os.Stat(script); err != nil {
		return "", nil, fmt.Errorf("%s: %w: %v", name, ErrMissing, err)
	}
	return node, []string{script}, nil
}

// StartAt runs the command line cmd gives for addr ("127.0.0.1:PORT"; empty
// for a free port) and waits for it: the stand-ins' Start functions.
func StartAt(addr string, cmd func(addr string) (string, []string, error)) (*Server, error) {
	var err error
	if addr == "" {
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	bin, args, err := cmd(addr)
	if err != nil {
		return nil, err
	}
	return Start(bin, args, addr)
}

// SplitPort splits "host:port".
func SplitPort(addr string) (host, port string) {
	host, port, _ = net.SplitHostPort(addr)
	return host, port
}

// FreeAddr returns a loopback address with a port free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Server is a running local service.
type Server struct {
	Endpoint string // http://ADDR
	cmd      *exec.Cmd
	done     chan error
}

// Start runs bin with args and waits up to 15 s for it to accept
// connections on addr.
func Start(bin string, args []string, addr string) (*Server, error) {
	return StartEnv(bin, args, addr, nil)
}

// StartEnv is Start with extra environment variables.
func StartEnv(bin string, args []string, addr string, env []string) (*Server, error) {
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	KillWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(bin), err)
	}
	s := &Server{Endpoint: "http://" + addr, cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("%s exited at start: %v", filepath.Base(bin), err)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("%s: not listening on %s after 15s", filepath.Base(bin), addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartDetached runs bin in its own process group with output appended
// to logPath, waits up to 15 s for addr, and leaves it running after this
// process exits (for make stack-up). It returns the pid.
func StartDetached(bin string, args []string, addr, logPath string) (int, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Base(bin), err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return cmd.Process.Pid, nil
		}
		select {
		case err := <-exited:
			return 0, fmt.Errorf("%s exited at start (see %s): %v", filepath.Base(bin), logPath, err)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return 0, fmt.Errorf("%s: not listening on %s after 15s (see %s)", filepath.Base(bin), addr, logPath)
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
