// Package s3sink stores tapline's objects in S3 with the semantics the
// delivery promise needs: a key names one immutable object, written once.
// Every PUT carries If-None-Match: * (S3 conditional writes), so a
// replay after a crash, which writes the same keys (package layout),
// finds them present and succeeds without a second copy; and a SHA-256
// checksum the server verifies. The SDK's standard retryer retries
// throttling, 5xx and connection errors with exponential backoff and
// jitter.
package s3sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Options configure a Store.
type Options struct {
	Bucket string
	// MaxAttempts per PUT, the first included. Default 8.
	MaxAttempts int
	// MaxBackoff caps the wait between attempts. Default 20s.
	MaxBackoff time.Duration
}

// Store writes objects to one bucket. Safe for concurrent use.
type Store struct {
	client *s3.Client
	bucket string
}

// New returns a Store using cfg (credentials, region and, for a local
// stack, BaseEndpoint). Path-style addressing is used when an endpoint is
// set, as local S3 servers need.
func New(cfg aws.Config, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3sink: bucket is required")
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 20 * time.Second
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.UsePathStyle = cfg.BaseEndpoint != nil
		so.Retryer = retry.NewStandard(func(ro *retry.StandardOptions) {
			ro.MaxAttempts = o.MaxAttempts
			ro.MaxBackoff = o.MaxBackoff
		})
	})
	return &Store{client: client, bucket: o.Bucket}, nil
}

// Client is the underlying S3 client, for tests and tools.
func (s *Store) Client() *s3.Client { return s.client }

// Put writes data under key unless an object with that key exists. It
// reports whether it wrote: false means the key was already there (a
// replay), which is success. The context bounds all attempts.
func (s *Store) Put(ctx context.Context, key string, data []byte) (bool, error) {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(key),
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		IfNoneMatch:       aws.String("*"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err == nil {
		return true, nil
	}
	if exists(err) {
		return false, nil
	}
	return false, fmt.Errorf("s3sink: put s3://%s/%s: %w", s.bucket, key, err)
}

// exists reports whether err says the object was already there: 412
// Precondition Failed, or 409 when a concurrent conditional write won.
func exists(err error) bool {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed, http.StatusConflict:
			return true
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return true
		}
	}
	return false
}

// ErrNotFound is returned by Get for a missing key.
var ErrNotFound = errors.New("s3sink: no such key")

// Get reads the object under key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	return s.GetAtMost(ctx, key, -1)
}

// ErrTooLarge is returned by GetAtMost for an object over its limit.
var ErrTooLarge = errors.New("object too large")

// GetAtMost is Get for objects others may have written: one larger than
// max bytes (max >= 0) is refused without reading its body.
func (s *Store) GetAtMost(ctx context.Context, key string, max int64) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("s3://%s/%s: %w", s.bucket, key, ErrNotFound)
		}
		return nil, fmt.Errorf("s3sink: get s3://%s/%s: %w", s.bucket, key, err)
	}
	defer out.Body.Close()
	body := io.Reader(out.Body)
	if max >= 0 {
		if n := aws.ToInt64(out.ContentLength); n > max {
			return nil, fmt.Errorf("s3://%s/%s: %d bytes, limit %d: %w", s.bucket, key, n, max, ErrTooLarge)
		}
		body = io.LimitReader(out.Body, max+1)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("s3sink: get s3://%s/%s: %w", s.bucket, key, err)
	}
	if max >= 0 && int64(len(b)) > max {
		return nil, fmt.Errorf("s3://%s/%s: over %d bytes: %w", s.bucket, key, max, ErrTooLarge)
	}
	return b, nil
}

// Delete removes the object under key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("s3sink: delete s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

// List returns the keys under prefix, in S3's (lexicographic) order.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3sink: list s3://%s/%s: %w", s.bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}
