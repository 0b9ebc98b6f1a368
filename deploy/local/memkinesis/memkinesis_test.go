package memkinesis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/tapline/tapline/pipeline/getrecords"
)

func TestKinesisTime(t *testing.T) {
	for ms, want := range map[int64]string{1764266400123: "1.764266400123E9", 1764266400000: "1.7642664E9", 1000000000000: "1.0E9", 1441215410867: "1.441215410867E9"} {
		if got := KinesisTime(ms); string(got) != want {
			t.Errorf("%d: %s, want %s", ms, got, want)
		}
	}
}

// TestReadsEveryRecord reads both shards from TRIM_HORIZON and from a
// sequence number, as the KCL does, with tapline's decoder: every record
// once, in order, then the open tip.
func TestReadsEveryRecord(t *testing.T) {
	shards := [][][]byte{{}, {}}
	for i := range 25 {
		shards[i%2] = append(shards[i%2], fmt.Appendf(nil, `{"n":%d}`, i))
	}
	s, err := Start("s", shards, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	k := kinesis.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: aws.AnonymousCredentials{}, BaseEndpoint: aws.String(s.URL)}, getrecords.Install)
	ctx := context.Background()
	ls, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil || len(ls.Shards) != 2 {
		t.Fatalf("%v %v", ls, err)
	}
	for i, sh := range ls.Shards {
		it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		iter := it.ShardIterator
		for {
			out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				got = append(got, string(r.Data))
				if len(*r.SequenceNumber) != 56 || time.Since(*r.ApproximateArrivalTimestamp).Abs() > time.Minute {
					t.Fatalf("sequence number %s, arrival %v: want 56 digits and about now", *r.SequenceNumber, r.ApproximateArrivalTimestamp)
				}
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
		if len(got) != len(shards[i]) || got[0] != string(shards[i][0]) || got[len(got)-1] != string(shards[i][len(shards[i])-1]) {
			t.Fatalf("shard %d: %v", i, got)
		}
		// After each record: the KCL's restart from a checkpoint, at an
		// answer's boundary or inside one; the rest read once, in order.
		for after := range shards[i] {
			it, err = k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: sh.ShardId,
				ShardIteratorType: ktypes.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seq(i, after))})
			if err != nil {
				t.Fatal(err)
			}
			var rest []string
			for iter := it.ShardIterator; ; {
				out, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
				if err != nil {
					t.Fatalf("after seq %d: %v", after, err)
				}
				if len(out.Records) == 0 {
					break
				}
				for _, r := range out.Records {
					rest = append(rest, string(r.Data))
				}
				iter = out.NextShardIterator
			}
			if fmt.Sprint(rest) != fmt.Sprint(got[after+1:]) {
				t.Fatalf("after seq %d: %v, want %v", after, rest, got[after+1:])
			}
		}
	}
}
