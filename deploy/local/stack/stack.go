// Package stack runs tapline's local AWS stack: kinesalite (Kinesis),
// dynalite (DynamoDB, the KCL lease table), versitygw (S3) and goaws
// (SNS), on loopback, with AWS SDK clients pointed at them. Tests start a
// private stack on free ports; `make stack-up` starts one on fixed ports
// for a newcomer to run tapline against (see deploy/local/stackctl).
package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tapline/tapline/deploy/local/dynalite"
	"github.com/tapline/tapline/deploy/local/faultproxy"
	"github.com/tapline/tapline/deploy/local/goaws"
	"github.com/tapline/tapline/deploy/local/kinesalite"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/versitygw"
	"github.com/tapline/tapline/sinks/s3sink"
)

// Credentials and region every stand-in accepts.
const (
	AccessKey = versitygw.AccessKey
	SecretKey = versitygw.SecretKey
	Region    = versitygw.Region
)

// Stack is a running local stack.
type Stack struct {
	Dir                        string // state: the S3 root, goaws config
	Kinesis, DynamoDB, S3, SNS *server.Server
	servers                    []*server.Server
	shields                    []*faultproxy.Proxy
}

// Options choose what to start.
type Options struct {
	Dir string // required: the stack's state directory
	// Topics are SNS topics and their HTTP subscribers; nil starts no SNS.
	Topics map[string][]string
}

// Start starts the stand-ins; on error nothing is left running. An error
// wraps server.ErrMissing when something is not installed.
func Start(o Options) (*Stack, error) {
	s := &Stack{Dir: o.Dir}
	var err error
	start := func(srv **server.Server, f func() (*server.Server, error)) {
		if err != nil {
			return
		}
		if *srv, err = f(); err == nil {
			s.servers = append(s.servers, *srv)
		}
	}
	root := filepath.Join(o.Dir, "s3")
	if err = os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	start(&s.Kinesis, func() (*server.Server, error) { return kinesalite.Start("") })
	start(&s.DynamoDB, func() (*server.Server, error) { return dynalite.Start("") })
	start(&s.S3, func() (*server.Server, error) { return versitygw.Start(root) })
	if o.Topics != nil {
		start(&s.SNS, func() (*server.Server, error) { return goaws.Start(o.Dir, o.Topics) })
	}
	if err != nil {
		s.Stop()
		return nil, err
	}
	// kinesalite and dynalite crash when a client dies mid-request (the
	// tests SIGKILL services): clients reach them through a shield.
	for _, srv := range []*server.Server{s.Kinesis, s.DynamoDB} {
		p, err := faultproxy.Start(srv.Endpoint, nil)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.shields = append(s.shields, p)
		srv.Endpoint = p.URL
	}
	return s, nil
}

// Stop stops every stand-in.
func (s *Stack) Stop() {
	for _, p := range s.shields {
		p.Stop()
	}
	for _, srv := range s.servers {
		srv.Stop()
	}
}

// Config is an AWS config for endpoint with the stack's credentials.
func Config(endpoint string) aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// KinesisClient, DynamoDBClient and S3Store are clients of the stack.
func (s *Stack) KinesisClient() *kinesis.Client {
	return kinesis.NewFromConfig(Config(s.Kinesis.Endpoint))
}

// DynamoDBClient is a client of the stack's DynamoDB.
func (s *Stack) DynamoDBClient() *dynamodb.Client {
	return dynamodb.NewFromConfig(Config(s.DynamoDB.Endpoint))
}

// S3Store returns a store on bucket, creating the bucket if needed.
func (s *Stack) S3Store(ctx context.Context, bucket string) (*s3sink.Store, error) {
	st, err := s3sink.New(Config(s.S3.Endpoint), s3sink.Options{Bucket: bucket, MaxAttempts: 3})
	if err != nil {
		return nil, err
	}
	_, err = st.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned interface{ ErrorCode() string }
	if err != nil && !(errors.As(err, &owned) && strings.HasPrefix(owned.ErrorCode(), "BucketAlready")) {
		return nil, err
	}
	return st, nil
}

// Env is the environment that points `tapline run` at the stack.
func (s *Stack) Env() []string {
	env := []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=" + Region,
		"TAPLINE_ENDPOINTS_KINESIS=" + s.Kinesis.Endpoint,
		"TAPLINE_ENDPOINTS_DYNAMODB=" + s.DynamoDB.Endpoint,
		"TAPLINE_ENDPOINTS_S3=" + s.S3.Endpoint,
	}
	if s.SNS != nil {
		env = append(env, "TAPLINE_ENDPOINTS_SNS="+s.SNS.Endpoint)
	}
	return env
}

// CreateStream creates a stream of n shards and waits until it is ACTIVE.
func CreateStream(ctx context.Context, k *kinesis.Client, name string, shards int) error {
	if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))}); err != nil {
		return err
	}
	return WaitActive(ctx, k, name)
}

// WaitActive waits up to 30 s for the stream to be ACTIVE.
func WaitActive(ctx context.Context, k *kinesis.Client, name string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stream %s not active after 30s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Record is one record to put: its partition key and payload.
type Record struct {
	Key  string
	Data []byte
}

// Put writes records with PutRecords, at most 500 and about 4 MB a call
// (the API's limits are 500 and 5 MB).
func Put(ctx context.Context, k *kinesis.Client, stream string, records []Record) error {
	for len(records) > 0 {
		n, size := 0, 0
		for n < len(records) && n < 500 && (n == 0 || size+len(records[n].Data) < 4<<20) {
			size += len(records[n].Data) + len(records[n].Key)
			n++
		}
		entries := make([]ktypes.PutRecordsRequestEntry, n)
		for i, r := range records[:n] {
			entries[i] = ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(r.Key), Data: r.Data}
		}
		out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			return err
		}
		if aws.ToInt32(out.FailedRecordCount) > 0 {
			return fmt.Errorf("put: %d of %d records failed", aws.ToInt32(out.FailedRecordCount), n)
		}
		records = records[n:]
	}
	return nil
}
