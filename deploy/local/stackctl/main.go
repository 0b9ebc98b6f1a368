// Command stackctl starts and stops the local AWS stack on fixed loopback
// ports for running tapline by hand (make stack-up, make stack-down):
//
//	kinesalite  127.0.0.1:4567  Kinesis, stream "telemetry" with 4 shards
//	dynalite    127.0.0.1:4568  DynamoDB (the KCL lease table)
//	versitygw   127.0.0.1:7070  S3, bucket "tapline-lake"
//	goaws       127.0.0.1:4100  SNS, topic "tapline-alerts"
//
// Pids and logs live in the state directory (.tapline-stack, or
// $TAPLINE_STACK_DIR). `stackctl env` prints the environment that points
// tapline and the AWS CLI at the stack.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tapline/tapline/deploy/local/dynalite"
	"github.com/tapline/tapline/deploy/local/goaws"
	"github.com/tapline/tapline/deploy/local/kinesalite"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/stack"
	"github.com/tapline/tapline/deploy/local/versitygw"
	"github.com/tapline/tapline/sinks/s3sink"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	kinesisAddr  = "127.0.0.1:4567"
	dynamoAddr   = "127.0.0.1:4568"
	s3Addr       = "127.0.0.1:7070"
	snsAddr      = "127.0.0.1:4100"
	stream       = "telemetry"
	bucket       = "tapline-lake"
	topic        = "tapline-alerts"
	streamShards = 4
)

func main() {
	dir := os.Getenv("TAPLINE_STACK_DIR")
	if dir == "" {
		dir = ".tapline-stack"
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: stackctl up|down|env")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(dir)
	case "down":
		err = down(dir)
	case "env":
		fmt.Print(env())
	default:
		err = fmt.Errorf("unknown command %q (up, down or env)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stackctl:", err)
		os.Exit(1)
	}
}

func env() string {
	return strings.Join([]string{
		"export AWS_ACCESS_KEY_ID=" + stack.AccessKey,
		"export AWS_SECRET_ACCESS_KEY=" + stack.SecretKey,
		"export AWS_REGION=" + stack.Region,
		"export TAPLINE_ENDPOINTS_KINESIS=http://" + kinesisAddr,
		"export TAPLINE_ENDPOINTS_DYNAMODB=http://" + dynamoAddr,
		"export TAPLINE_ENDPOINTS_S3=http://" + s3Addr,
		"export TAPLINE_ENDPOINTS_SNS=http://" + snsAddr,
		"export TAPLINE_STREAM=" + stream,
		"export TAPLINE_S3_BUCKET=" + bucket,
		"export TAPLINE_SNS_TOPIC_ARN=" + goaws.TopicARN(topic),
	}, "\n") + "\n"
}

func up(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "s3"), 0o755); err != nil {
		return err
	}
	type svc struct {
		name, addr string
		cmd        func() (string, []string, error)
	}
	abs, _ := filepath.Abs(dir)
	services := []svc{
		{"kinesalite", kinesisAddr, func() (string, []string, error) { return kinesalite.Command(kinesisAddr) }},
		{"dynalite", dynamoAddr, func() (string, []string, error) { return dynalite.Command(dynamoAddr) }},
		{"versitygw", s3Addr, func() (string, []string, error) { return versitygw.Command(s3Addr, filepath.Join(abs, "s3")) }},
		{"goaws", snsAddr, func() (string, []string, error) {
			return goaws.Command(snsAddr, abs, map[string][]string{topic: nil})
		}},
	}
	for _, s := range services {
		pidFile := filepath.Join(dir, s.name+".pid")
		if pid, err := readPid(pidFile); err == nil && syscall.Kill(pid, 0) == nil {
			fmt.Printf("%-10s already running (pid %d)\n", s.name, pid)
			continue
		}
		bin, args, err := s.cmd()
		if err != nil {
			return err
		}
		pid, err := server.StartDetached(bin, args, s.addr, filepath.Join(dir, s.name+".log"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return err
		}
		fmt.Printf("%-10s http://%s (pid %d, log %s)\n", s.name, s.addr, pid, filepath.Join(dir, s.name+".log"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k := kinesis.NewFromConfig(stack.Config("http://" + kinesisAddr))
	if _, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)}); err != nil {
		if err := stack.CreateStream(ctx, k, stream, streamShards); err != nil {
			return fmt.Errorf("create stream: %w", err)
		}
	}
	st, err := s3sink.New(stack.Config("http://"+s3Addr), s3sink.Options{Bucket: bucket})
	if err != nil {
		return err
	}
	if _, err := st.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil && !strings.Contains(err.Error(), "BucketAlready") {
		return fmt.Errorf("create bucket: %w", err)
	}
	fmt.Printf("\nstream %q (%d shards), bucket %q, topic %q. Point tapline at them with:\n\n%s", stream, streamShards, bucket, topic, env())
	return nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func down(dir string) error {
	var errs []error
	for _, name := range []string{"goaws", "versitygw", "dynalite", "kinesalite"} {
		pidFile := filepath.Join(dir, name+".pid")
		pid, err := readPid(pidFile)
		if err != nil {
			continue
		}
		if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		os.Remove(pidFile)
		fmt.Printf("%-10s stopped (pid %d)\n", name, pid)
	}
	return errors.Join(errs...)
}
