package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/tapline/tapline/deploy/local/stack"
)

// TestGatewayBacklog is the scenario a new user hit: a fleet of 200
// devices has sent an hour of telemetry, and 50 pumps behind a gateway
// sent theirs live for the first half hour only; then the gateway comes
// back online and an independent producer (its own PutRecords calls,
// RFC 3339 times, its own partition keys) uploads the half hour the pumps
// buffered. Every buffered record is aggregated into its pump's windows:
// 0 late (8,496 of 9,000 were dead-lettered as late with one watermark
// per shard), and S3 equals the oracle's.
func TestGatewayBacklog(t *testing.T) {
	e := newFaultEnv(t, 2)
	base := time.Now().Add(-90 * time.Minute).Truncate(time.Minute)
	var fleet []stack.Record
	for s := 0; s < 3600; s += 10 {
		ts := base.Add(time.Duration(s) * time.Second).UnixMilli()
		for d := range 200 {
			id := fmt.Sprintf("keg-%04d", d)
			fleet = append(fleet, stack.Record{Key: id, Data: fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"temp_c":%g}}`, id, ts, 4+float64(d%10)/10)})
		}
		if s < 1800 {
			for p := range 50 {
				id := fmt.Sprintf("pump-%02d", p)
				fleet = append(fleet, stack.Record{Key: id, Data: fmt.Appendf(nil, `{"device_id":%q,"ts":%d,"metrics":{"flow_lpm":%d}}`, id, ts, s%60)})
			}
		}
	}
	p := e.start("w")
	e.put(fleet)
	waitFor(t, "the fleet's hour read", 120*time.Second, func() bool { return p.metric("tapline_records_total") >= float64(len(fleet)) })

	// The gateway's upload: pump by pump, 500 records a call.
	var backlog []types.PutRecordsRequestEntry
	for pump := range 50 {
		id := fmt.Sprintf("pump-%02d", pump)
		for s := 1800; s < 3600; s += 10 {
			ts := base.Add(time.Duration(s) * time.Second).Format(time.RFC3339Nano)
			backlog = append(backlog, types.PutRecordsRequestEntry{
				PartitionKey: aws.String("gateway-7/" + id),
				Data:         fmt.Appendf(nil, `{"metrics":{"flow_lpm":%d},"ts":%q,"device_id":%q}`, s%60, ts, id),
			})
		}
	}
	k := e.st.KinesisClient()
	for len(backlog) > 0 {
		n := min(500, len(backlog))
		out, err := k.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String(e.stream), Records: backlog[:n]})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) != 0 {
			continue // throttled: send the call again
		}
		backlog = backlog[n:]
	}
	const buffered = 50 * 180
	total := float64(len(fleet) + buffered)
	waitFor(t, "the backlog read", 120*time.Second, func() bool { return p.metric("tapline_records_total") >= total })
	late := p.metric(`tapline_records_rejected_total{reason="late"}`)

	want := e.oracle()
	e.waitAcked(want, 120*time.Second)
	rep := e.verify(want)
	t.Logf("RELIABILITY gateway backlog: %d live records, then %d buffered by 50 pumps for 30 minutes: %.0f late; %s", len(fleet), buffered, late, rep)
	if late != 0 {
		t.Errorf("%.0f of the %d buffered records late", late, buffered)
	}
	if !rep.OK() {
		t.Error(rep)
	}
}
