package server

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestServerDiesWithItsStarter: a process that started a server (here
// the test binary in two helper roles) and is then killed, as go test
// kills a test that times out, takes the server with it.
func TestServerDiesWithItsStarter(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux ties a child's life to its parent's")
	}
	starter := exec.Command(os.Args[0], "-test.run", "^TestServerDiesWithItsStarter$")
	starter.Env = append(os.Environ(), "TAPLINE_SERVER_HELPER=starter")
	out, err := starter.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := starter.Start(); err != nil {
		t.Fatal(err)
	}
	defer starter.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the starter said %q: %v", line, err)
	}
	pid, err := strconv.Atoi(line[:len(line)-1])
	if err != nil {
		t.Fatalf("the starter said %q", line)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("server %d not running while its starter is: %v", pid, err)
	}
	starter.Process.Kill()
	starter.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		// The server is the starter's child, reparented at its death:
		// gone, or a zombie its new parent has not reaped yet.
		if err := syscall.Kill(pid, 0); err != nil || zombie(pid) {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("server %d outlived its starter by 10 s", pid)
		}
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: the state follows the last ')'.
	for i := len(b) - 1; i > 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] == 'Z'
		}
	}
	return false
}

// TestMain runs the helper roles: a starter, which starts a server (this
// binary again) with Start, prints its pid and waits to be killed; and
// the server, which listens until it is.
func TestMain(m *testing.M) {
	switch os.Getenv("TAPLINE_SERVER_HELPER") {
	case "starter":
		addr, err := FreeAddr()
		if err != nil {
			os.Exit(2)
		}
		s, err := StartEnv(os.Args[0], []string{"-test.run", "^$"}, addr, []string{"TAPLINE_SERVER_HELPER=server", "TAPLINE_SERVER_ADDR=" + addr})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(s.cmd.Process.Pid)
		select {}
	case "server":
		l, err := net.Listen("tcp", os.Getenv("TAPLINE_SERVER_ADDR"))
		if err != nil {
			os.Exit(2)
		}
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(2)
			}
			c.Close()
		}
	}
	os.Exit(m.Run())
}
