package demo

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/localdir"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// files collects the demo's raw records, windows and alerts in Parquet
// encoders, one per dataset and event hour, and writes them under the
// output directory in the S3 layout (package layout). Batches end after a
// fixed number of records, so files are a function of the input: a rerun
// with the same seed writes the same names and bytes, and finds them
// already there.
type files struct {
	dir          *localdir.Dir
	raw          map[int64]*parquet.Raw
	windows      map[int64]*parquet.Windows
	alerts       map[int64]*parquet.Alerts
	first, last  uint64 // sequence numbers of the batch's records
	rows         int
	written, old int // files written, files that already existed
}

const hourMs = 3_600_000

func newFiles(root string) (*files, error) {
	dir, err := localdir.New(root)
	if err != nil {
		return nil, err
	}
	return &files{dir: dir, raw: map[int64]*parquet.Raw{}, windows: map[int64]*parquet.Windows{}, alerts: map[int64]*parquet.Alerts{}}, nil
}

// encoder returns the encoder of the hour holding ms, creating it.
func encoder[E any](m map[int64]*E, ms int64, mk func(parquet.Options) (*E, error)) *E {
	h := ms - ms%hourMs
	e := m[h]
	if e == nil {
		e, _ = mk(parquet.Options{}) // the default options are valid
		m[h] = e
	}
	return e
}

func (f *files) record(rec *schemas.Record, seq string, arrival int64) {
	n, _ := strconv.ParseUint(seq, 10, 64)
	if f.rows == 0 {
		f.first = n
	}
	f.last = n
	f.rows++
	encoder(f.raw, rec.Time, parquet.NewRaw).Append(rec, arrival, "demo", seq)
}

func (f *files) window(w *windows.Window) {
	encoder(f.windows, w.Start, parquet.NewWindows).Append(w)
}

func (f *files) alert(a *rules.Alert) {
	encoder(f.alerts, a.At, parquet.NewAlerts).Append(a)
}

// flush writes every non-empty encoder as one file of its dataset and
// hour, named after the batch's sequence range.
func (f *files) flush() error {
	if f.rows == 0 {
		return nil
	}
	first, last := strconv.FormatUint(f.first, 10), strconv.FormatUint(f.last, 10)
	if err := writeAll(f, layout.Raw, f.raw, first, last); err != nil {
		return err
	}
	if err := writeAll(f, layout.Windows, f.windows, first, last); err != nil {
		return err
	}
	if err := writeAll(f, layout.Alerts, f.alerts, first, last); err != nil {
		return err
	}
	f.rows = 0
	return nil
}

// writeAll writes one dataset's encoders in hour order.
func writeAll[E interface {
	Rows() int
	Bytes() ([]byte, error)
}](f *files, dataset string, m map[int64]E, first, last string) error {
	hours := make([]int64, 0, len(m))
	for h := range m {
		hours = append(hours, h)
	}
	slices.Sort(hours)
	for _, h := range hours {
		if m[h].Rows() == 0 {
			continue
		}
		key, err := layout.Key("", dataset, h, "demo", first, last, "parquet")
		if err != nil {
			return err
		}
		data, err := m[h].Bytes()
		if err != nil {
			return err
		}
		wrote, err := f.dir.Put(key, data)
		if err != nil {
			return err
		}
		if wrote {
			f.written++
		} else {
			f.old++
		}
	}
	return nil
}

// query is a DuckDB command that reads the windows the demo wrote.
func (f *files) query() string {
	return fmt.Sprintf(`duckdb -c "SELECT device_id, metric, count(*) AS windows, round(avg(mean), 2) AS mean FROM read_parquet('%s/windows/*/*/*.parquet', hive_partitioning = true) WHERE window_spec = '1m' GROUP BY ALL ORDER BY ALL LIMIT 12"`, f.dir.Root())
}
