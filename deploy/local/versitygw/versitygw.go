// Package versitygw starts versitygw, the S3 server tapline's tests talk
// to, on a loopback port with a posix backend in a directory the caller
// owns. The binary is built from the version pinned in deploy/tools/go.mod
// into .tools/bin by `make local-stack` (part of `make test`).
package versitygw

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/tapline/tapline/deploy/local/server"
)

// Credentials of the root user the server is started with.
const (
	AccessKey = "tapline-test"
	SecretKey = "tapline-test-secret"
	Region    = "us-east-1"
)

// ErrUnavailable says the binary is missing: run `make local-stack`.
var ErrUnavailable = server.ErrMissing

// Command is the command line serving root on addr.
func Command(addr, root string) (string, []string, error) {
	bin, err := server.Binary("versitygw", "TAPLINE_VERSITYGW")
	if err != nil {
		return "", nil, err
	}
	return bin, []string{"--port", addr, "--access", AccessKey, "--secret", SecretKey, "--region", Region, "--quiet", "posix", root}, nil
}

// Start runs versitygw serving root (its buckets are root's directories).
func Start(root string) (*server.Server, error) {
	addr, err := server.FreeAddr()
	if err != nil {
		return nil, err
	}
	bin, args, err := Command(addr, root)
	if err != nil {
		return nil, err
	}
	return server.Start(bin, args, addr)
}

// AWSConfig is the SDK configuration for a server at endpoint: its
// region, root credentials and the endpoint itself.
func AWSConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		BaseEndpoint: aws.String(endpoint),
	}
}
