package parquet

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/windows"
)

var updatePinned = flag.Bool("update-pinned", false, "rewrite testdata/pinned.txt")

// TestPinnedBytes holds the encoders to the bytes they wrote before: the
// SHA-256 of every dataset's file for fill's rows (with and without
// sketches, zstd and Snappy with small row groups), and for raw rows
// without seq, with reading indices and with no metrics. A replay after
// an upgrade writes the same S3 objects only if these do not move; when
// a change means them to (arrow-go's own output, a schema version), run
// `go test ./sinks/parquet -run TestPinnedBytes -update-pinned` and say
// why in the commit.
func TestPinnedBytes(t *testing.T) {
	var got []string
	for _, c := range []struct {
		name      string
		o         Options
		quantiles bool
	}{{"zstd", Options{}, false}, {"zstd+sketch", Options{}, true}, {"snappy/50", Options{Compression: Snappy, RowGroupRows: 50}, true}} {
		ew, ea, er := fill(t, c.o, c.quantiles)
		for _, d := range []struct {
			dataset string
			enc     interface{ Bytes() ([]byte, error) }
		}{{"windows", ew}, {"alerts", ea}, {"raw", er}} {
			got = append(got, fmt.Sprintf("%s %s %s", c.name, d.dataset, digest(t, d.enc)))
		}
	}
	er := mustRaw(t)
	for i := range 300 {
		r := &schemas.Record{DeviceID: []byte(fmt.Sprintf("gw-%02d", i%7)), Time: 1_764_000_000_000 + int64(i)*250, Seq: -1, Reading: i % 10}
		if i%3 == 0 {
			r.Reading = -1
			r.Seq = int64(i)
		}
		for k := range i % 4 { // 0 to 3 metrics, names of a few lengths
			r.Metrics = append(r.Metrics, schemas.Metric{Name: []byte(strings.Repeat("m", k+1) + "_x"), Value: float64(i) / float64(k+1)})
		}
		er.Append(r, r.Time+int64(i%5), "shardId-00000000000"+fmt.Sprint(i%2), fmt.Sprint(49_000_000+i))
	}
	got = append(got, "raw-readings raw "+digest(t, er))
	// Enough rows for several pages a column chunk and two row groups.
	spec, _ := windows.ParseSpec("1m")
	ew, _ := NewWindows(Options{})
	for i := range 150_000 {
		w := windows.Window{Spec: &spec, Start: 1_764_000_000_000 + int64(i/6000)*60_000, DeviceID: fmt.Sprintf("dev-%05d", i%1000),
			Metric: []string{"flow_lpm", "temp_c", "pressure_kpa"}[i%3],
			Agg:    windows.Agg{Count: int64(1 + i%60), Sum: float64(i) * 1.25, Min: float64(i % 7), Max: float64(i%11) + 0.5, Mean: float64(i) / 3, M2: float64(i%13) / 7}}
		w.End, w.FirstTS, w.LastTS = w.Start+60_000, w.Start+int64(i%60), w.Start+59_000
		ew.Append(&w)
	}
	got = append(got, "large windows "+digest(t, ew))

	const path = "testdata/pinned.txt"
	text := strings.Join(got, "\n") + "\n"
	if *updatePinned {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != text {
		t.Fatalf("files differ from %s:\ngot:\n%swant:\n%s", path, text, want)
	}
}

func digest(t *testing.T, e interface{ Bytes() ([]byte, error) }) string {
	t.Helper()
	b := mustBytes(t, e)
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%d %s", len(b), hex.EncodeToString(sum[:8]))
}
