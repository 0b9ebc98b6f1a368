// Package dynalite starts dynalite, the DynamoDB server holding the KCL
// lease table in tapline's tests and local stack, in memory on a loopback
// port. It is pinned in deploy/local/package-lock.json and installed by
// `make local-stack`. Tables become ACTIVE within milliseconds.
package dynalite

import "github.com/tapline/tapline/deploy/local/server"

// Start runs dynalite on addr ("127.0.0.1:PORT"; empty for a free port).
func Start(addr string) (*server.Server, error) {
	node, args, err := server.NodeBin("dynalite")
	if err != nil {
		return nil, err
	}
	if addr == "" {
		if addr, err = server.FreeAddr(); err != nil {
			return nil, err
		}
	}
	_, port := server.SplitPort(addr)
	args = append(args, "--port", port, "--createTableMs", "10", "--deleteTableMs", "10", "--updateTableMs", "10")
	return server.Start(node, args, addr)
}
