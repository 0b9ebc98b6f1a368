package backtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tapline/tapline/schemas"
)

// ReadPaths reads every input: files ending in .csv (ReadCSV), .jsonl
// or .json (ReadJSONLines) or .parquet (ReadRawParquet: tapline's raw
// dataset, as in S3 or a local copy), and directories, walked for such
// files in lexical order (Parquet files of other datasets skipped).
func ReadPaths(paths []string) ([]Reading, error) {
	var all []Reading
	read := func(path string) error {
		var rs []Reading
		switch filepath.Ext(path) {
		case ".csv":
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if rs, err = ReadCSV(path, f); err != nil {
				return err
			}
		case ".jsonl", ".json":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rs = ParseJSONLines(b)
		case ".parquet":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if rs, err = ReadRawParquet(path, b); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not .csv, .jsonl, .json or .parquet", path)
		}
		all = append(all, rs...)
		return nil
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if err := read(p); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			switch filepath.Ext(path) {
			case ".csv", ".jsonl":
				return read(path)
			case ".parquet":
				if err := read(path); !errors.Is(err, ErrNotRaw) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return all, nil
}

// WriteAlerts writes one line per alert, in the order raised: event
// time, state and the rule's message (which names the device, the
// metric and the rule).
func WriteAlerts(w io.Writer, res *Result) error {
	var b strings.Builder
	for i := range res.Alerts {
		a := &res.Alerts[i]
		fmt.Fprintf(&b, "%s %-8s %s\n", schemas.AlertTime(a.At), a.State, a.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Report is a replay for machines (-json).
type Report struct {
	Records   uint64                 `json:"records"`
	Accepted  uint64                 `json:"accepted"`
	Duplicate uint64                 `json:"duplicate,omitempty"` // redeliveries dropped
	Rejected  map[string]uint64      `json:"rejected,omitempty"`  // by reason
	Alerts    []schemas.AlertMessage `json:"alerts"`
	Score     *Score                 `json:"score,omitempty"` // with labels
}

// WriteJSON writes the Report of res (score may be nil).
func WriteJSON(w io.Writer, res *Result, score *Score) error {
	r := Report{Records: res.Stats.Records, Accepted: res.Stats.Accepted, Duplicate: res.Stats.Windows.Duplicate, Alerts: []schemas.AlertMessage{}, Score: score}
	for reason, n := range res.Stats.Rejected {
		if n > 0 {
			if r.Rejected == nil {
				r.Rejected = map[string]uint64{}
			}
			r.Rejected[schemas.Reason(reason).String()] = n
		}
	}
	for i := range res.Alerts {
		r.Alerts = append(r.Alerts, res.Alerts[i].AlertMessage())
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r)
}
