package pipeline_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tapline/tapline/deploy/local/duckdb"
	"github.com/tapline/tapline/deploy/local/server"
	"github.com/tapline/tapline/pipeline"
	"github.com/tapline/tapline/sinks/batch"
	"github.com/tapline/tapline/sinks/localdir"
	"github.com/tapline/tapline/windows"
)

// TestSessionsAgreeWithDuckDB: the session windows tapline writes equal
// the sessions DuckDB computes from the raw dataset tapline wrote beside
// them (a new session wherever a series' next record is more than the gap
// after its last), for devices whose bursts are separated by gaps on both
// sides of the gap, some of whose records arrive out of order, and one
// whose readings all come as a backlog after everyone else's.
func TestSessionsAgreeWithDuckDB(t *testing.T) {
	server.Require(t, duckdb.Available())
	const gap = 5 * time.Minute
	rng := rand.New(rand.NewPCG(17, 3))
	type rec struct {
		arrival int64 // order of arrival: the time of its place in the stream
		data    []byte
	}
	t0 := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC).UnixMilli()
	var live, backlog []rec
	for dev := range 30 {
		ts := t0 + int64(rng.IntN(600_000))
		var mine []rec
		for ts < t0+6*3_600_000 {
			for range 1 + rng.IntN(20) { // a burst, every 20 s
				data := fmt.Appendf(nil, `{"device_id":"tap-%02d","ts":%d,"metrics":{"flow":%d`, dev, ts, rng.IntN(5))
				if rng.IntN(3) > 0 {
					data = fmt.Appendf(data, `,"temp":%d`, rng.IntN(9))
				}
				mine = append(mine, rec{ts, append(data, "}}"...)})
				ts += 20_000
			}
			// then a pause on either side of the gap
			ts += []int64{60_000, 180_000, 299_000, 301_000, 600_000, 3_600_000}[rng.IntN(6)]
		}
		for i := 1; i < len(mine); i += 7 { // out of order within the lateness
			if mine[i].arrival-mine[i-1].arrival == 20_000 {
				mine[i-1].data, mine[i].data = mine[i].data, mine[i-1].data
			}
		}
		if dev == 0 {
			backlog = mine
		} else {
			live = append(live, mine...)
		}
	}
	slices.SortStableFunc(live, func(a, b rec) int { return cmp.Compare(a.arrival, b.arrival) })

	dir := t.TempDir()
	store, err := localdir.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := batch.New(store, batch.Options{Shard: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	var specs []windows.Spec
	for _, s := range []string{"1m", "session:5m"} {
		sp, _ := windows.ParseSpec(s)
		specs = append(specs, sp)
	}
	p, err := pipeline.NewProcessor(pipeline.Options{Shard: "s1", DeadLetters: out, OnWindow: out.Window, OnRecord: out.Record,
		Windows: windows.Options{Specs: specs, AllowedLateness: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range append(live, backlog...) {
		if err := p.Process(r.data, strconv.Itoa(i), 0); err != nil {
			t.Fatal(err)
		}
	}
	p.Flush()
	if _, err := out.Flush(context.Background(), p.Watermark()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Accepted != st.Records || st.Windows.OutOfOrder == 0 || st.Windows.SessionStray != 0 {
		t.Fatalf("%d of %d accepted, %d out of order, %d left out of sessions", st.Accepted, st.Records, st.Windows.OutOfOrder, st.Windows.SessionStray)
	}

	raw, wins := filepath.Join(dir, "raw/*/*/*.parquet"), filepath.Join(dir, "windows/*/*/*.parquet")
	want, err := duckdb.Query(fmt.Sprintf(`WITH r AS (
	  SELECT device_id, ts, unnest(map_keys(metrics)) AS metric, unnest(map_values(metrics)) AS v FROM read_parquet('%s')),
	g AS (SELECT *, CASE WHEN epoch_ms(ts) - epoch_ms(lag(ts) OVER (PARTITION BY device_id, metric ORDER BY ts)) > %d THEN 1 ELSE 0 END AS brk FROM r),
	s AS (SELECT *, sum(brk) OVER (PARTITION BY device_id, metric ORDER BY ts ROWS UNBOUNDED PRECEDING) AS sid FROM g)
	SELECT device_id, metric, epoch_ms(min(ts)) AS start, epoch_ms(max(ts)) + %d AS "end", count(*) AS n, sum(v) AS total
	FROM s GROUP BY device_id, metric, sid ORDER BY ALL`, raw, gap.Milliseconds(), gap.Milliseconds()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := duckdb.Query(fmt.Sprintf(`SELECT device_id, metric, epoch_ms(window_start) AS start, epoch_ms(window_end) AS "end", count AS n, sum AS total
	FROM read_parquet('%s') WHERE window_spec = 'session:5m' ORDER BY ALL`, wins))
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Rows) < 200 {
		t.Fatalf("only %d sessions: the test data has too few gaps", len(want.Rows))
	}
	if fmt.Sprint(got.Rows) != fmt.Sprint(want.Rows) {
		for i := range min(len(got.Rows), len(want.Rows)) {
			if fmt.Sprint(got.Rows[i]) != fmt.Sprint(want.Rows[i]) {
				t.Fatalf("%d sessions from tapline, %d from DuckDB over the raw rows; first difference at %d:\ntapline %v\nduckdb  %v", len(got.Rows), len(want.Rows), i, got.Rows[i], want.Rows[i])
			}
		}
		t.Fatalf("%d sessions from tapline, %d from DuckDB over the raw rows", len(got.Rows), len(want.Rows))
	}
	t.Logf("%d sessions agree (%d records, %d out of order, one device's all as a backlog)", len(got.Rows), st.Records, st.Windows.OutOfOrder)
}
