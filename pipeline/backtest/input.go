package backtest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tapline/tapline/schemas"
)

// DeviceOf is the device id of a series file: its name without the
// extension, '_' replaced by '-' (NAB's "ec2_cpu_utilization_24ae8d.csv"
// is "ec2-cpu-utilization-24ae8d").
func DeviceOf(file string) string {
	base := filepath.Base(filepath.ToSlash(file))
	return strings.ReplaceAll(strings.TrimSuffix(base, filepath.Ext(base)), "_", "-")
}

// ReadCSV reads "timestamp,value[,device]" rows after a header line: one
// metric, "value", of the device named in the row or, where the row names
// none, of the file (DeviceOf(name)). Timestamps are UTC
// "YYYY-MM-DD HH:MM:SS[.ffffff]" (NAB's), a bare date or RFC 3339. A row that does not
// parse is an error naming the file and line: a backtest of data other
// than the data is no backtest.
func ReadCSV(name string, r io.Reader) ([]Reading, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil {
		return nil, fmt.Errorf("%s: header: %w", name, err)
	}
	dev := DeviceOf(name)
	var out []Reading
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if len(row) < 2 || len(row) > 3 {
			return nil, fmt.Errorf("%s:%d: %d fields, want timestamp,value[,device]", name, line, len(row))
		}
		at, err := parseTime(row[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		d := dev
		if len(row) == 3 && row[2] != "" {
			d = row[2]
		}
		if _, err := strconv.ParseFloat(row[1], 64); err != nil {
			return nil, fmt.Errorf("%s:%d: value %q is not a number", name, line, row[1])
		}
		data := fmt.Appendf(nil, `{"device_id":%s,"ts":%d,"metrics":{"value":%s}}`, strconv.Quote(d), at, row[1])
		out = append(out, Reading{Device: d, At: at, Data: data})
	}
}

func parseTime(s string) (int64, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("timestamp %q is not YYYY-MM-DD[ HH:MM:SS] or RFC 3339", s)
}

// ReadJSONLines reads records as devices send them, one JSON object a
// line. A line the decoder rejects is still replayed (the service would
// dead-letter it, and the replay counts it the same way); the device and
// time of the others order the replay and span their series. The input
// is read whole and the readings point into it: one allocation for the
// data, one string per device.
func ReadJSONLines(r io.Reader) ([]Reading, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return ParseJSONLines(data), nil
}

// ParseJSONLines is ReadJSONLines on input already in memory; the
// readings point into data.
func ParseJSONLines(data []byte) []Reading {
	dec := schemas.NewDecoder(schemas.Options{})
	devices := map[string]string{}
	out := make([]Reading, 0, bytes.Count(data, []byte{'\n'})+1)
	var last int64
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		rd := Reading{At: last, Data: line}
		if rec, err := dec.Decode(line, 0); err == nil {
			id, ok := devices[string(rec.DeviceID)]
			if !ok {
				id = string(rec.DeviceID)
				devices[id] = id
			}
			rd.Device, rd.At = id, rec.Time
			last = rec.Time
		}
		out = append(out, rd)
	}
	return out
}
