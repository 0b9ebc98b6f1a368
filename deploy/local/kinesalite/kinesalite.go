// Package kinesalite starts kinesalite, the Kinesis server tapline's tests
// and local stack talk to, in memory on a loopback port. It is pinned in
// deploy/local/package-lock.json and installed by `make local-stack`.
// Streams stay CREATING and UPDATING for a few milliseconds only, so
// tests that create or reshard streams do not wait.
package kinesalite

import "github.com/tapline/tapline/deploy/local/server"

// Command is the command line serving on addr ("127.0.0.1:PORT").
func Command(addr string) (string, []string, error) {
	node, args, err := server.NodeBin("kinesalite")
	if err != nil {
		return "", nil, err
	}
	_, port := server.SplitPort(addr)
	return node, append(args, "--port", port, "--shardLimit", "100",
		"--createStreamMs", "20", "--deleteStreamMs", "20", "--updateStreamMs", "20"), nil
}

// Start runs kinesalite on addr ("127.0.0.1:PORT"; empty for a free port).
func Start(addr string) (*server.Server, error) { return server.StartAt(addr, Command) }
