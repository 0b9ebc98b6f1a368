// Package dynalite starts dynalite, the DynamoDB server holding the KCL
// lease table in tapline's tests and local stack, in memory on a loopback
// port. It is pinned in deploy/local/package-lock.json and installed by
// `make local-stack`. Tables become ACTIVE within milliseconds.
package dynalite

import "github.com/tapline/tapline/deploy/local/server"

// Command is the command line serving on addr ("127.0.0.1:PORT").
func Command(addr string) (string, []string, error) {
	node, args, err := server.NodeBin("dynalite")
	if err != nil {
		return "", nil, err
	}
	_, port := server.SplitPort(addr)
	return node, append(args, "--port", port, "--createTableMs", "10", "--deleteTableMs", "10", "--updateTableMs", "10"), nil
}

// Start runs dynalite on addr ("127.0.0.1:PORT"; empty for a free port).
func Start(addr string) (*server.Server, error) { return server.StartAt(addr, Command) }
