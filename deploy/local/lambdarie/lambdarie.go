// Package lambdarie runs a Lambda function binary under the AWS Lambda
// Runtime Interface Emulator (aws-lambda-rie, pinned in
// deploy/tools/go.mod and built into .tools/bin by `make local-stack`):
// the same Runtime API the Lambda service gives a provided.al2023 function,
// on a loopback port, invoked over HTTP as the Lambda Invoke API would.
package lambdarie

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tapline/tapline/deploy/local/server"
)

// Function is a running emulator with its function.
type Function struct {
	*server.Server
}

// Start runs the function binary (its bootstrap) under the emulator with
// the extra environment env.
func Start(bootstrap string, env []string) (*Function, error) {
	rie, err := server.Binary("aws-lambda-rie", "TAPLINE_LAMBDA_RIE")
	if err != nil {
		return nil, err
	}
	addr, err := server.FreeAddr()
	if err != nil {
		return nil, err
	}
	srv, err := server.StartEnv(rie, []string{"--log-level", "error", "--runtime-interface-emulator-address", addr, bootstrap}, addr,
		append([]string{"AWS_LAMBDA_FUNCTION_NAME=commander", "AWS_LAMBDA_FUNCTION_TIMEOUT=30"}, env...))
	if err != nil {
		return nil, err
	}
	return &Function{srv}, nil
}

// Invoke sends one event and returns the function's response body. A
// function error comes back as its error document with status 200, as
// with Lambda's synchronous Invoke; the caller reads it.
func (f *Function) Invoke(event []byte) ([]byte, error) {
	c := http.Client{Timeout: 60 * time.Second}
	resp, err := c.Post(f.Endpoint+"/2015-03-31/functions/function/invocations", "application/json", bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("lambdarie: invoke: %s: %s", resp.Status, b)
	}
	return b, nil
}
