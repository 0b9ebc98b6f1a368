package s3sink

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	localserver "github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/deploy/local/versitygw"
)

// server is the versitygw the tests in this package share.
var server *localserver.Server

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := os.MkdirTemp("", "tapline-s3-*")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)
	server, err = versitygw.Start(root)
	if err != nil {
		if errors.Is(err, versitygw.ErrUnavailable) && os.Getenv("CI") != "true" {
			// Outside CI, without `make local-stack`, the tests skip (below).
			server = nil
			return m.Run()
		}
		panic(err) // in CI a missing server is a failure, never a skip
	}
	defer server.Stop()
	return m.Run()
}

func newStore(t *testing.T, bucket string) *Store {
	t.Helper()
	if server == nil {
		t.Skip(versitygw.ErrUnavailable)
	}
	cfg := versitygw.AWSConfig(server.Endpoint)
	s, err := New(cfg, Options{Bucket: bucket, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPutOnceThenReplay: the first PUT writes, a replayed PUT of the same
// key is a success that leaves the object untouched, against a real S3
// server.
func TestPutOnceThenReplay(t *testing.T) {
	s := newStore(t, "tapline-replay")
	ctx := context.Background()
	key := "tapline/windows/dt=2026-11-27/hour=18/shardId-000000000000-1-9.parquet"
	wrote, err := s.Put(ctx, key, []byte("first version"))
	if err != nil || !wrote {
		t.Fatalf("first put: wrote=%v err=%v", wrote, err)
	}
	wrote, err = s.Put(ctx, key, []byte("second version"))
	if err != nil || wrote {
		t.Fatalf("replayed put: wrote=%v err=%v, want a success that writes nothing", wrote, err)
	}
	out, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("tapline-replay"), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(body, []byte("first version")) {
		t.Fatalf("object holds %q after the replay", body)
	}
}

// TestPutErrorsAreReported: a bucket that does not exist is an error with
// the key in it, not a silent success.
func TestPutErrorsAreReported(t *testing.T) {
	s := newStore(t, "tapline-errors")
	s.bucket = "no-such-bucket"
	_, err := s.Put(context.Background(), "k", []byte("x"))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("s3://no-such-bucket/k")) {
		t.Fatalf("err = %v", err)
	}
}

func TestGetAndList(t *testing.T) {
	s := newStore(t, "tapline-getlist")
	ctx := context.Background()
	for _, k := range []string{"state/s1/2/base.snap", "state/s1/1/base.snap", "state/s2/1/base.snap"} {
		if _, err := s.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.List(ctx, "state/s1/")
	if err != nil || len(keys) != 2 || keys[0] != "state/s1/1/base.snap" || keys[1] != "state/s1/2/base.snap" {
		t.Fatalf("List = %q, %v", keys, err)
	}
	b, err := s.Get(ctx, "state/s2/1/base.snap")
	if err != nil || string(b) != "state/s2/1/base.snap" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	if _, err := s.Get(ctx, "state/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key = %v, want ErrNotFound", err)
	}
}
