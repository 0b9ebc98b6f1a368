package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/tapline/tapline/windows/rules"
)

// Window is one labelled anomaly, [Start, End] in Unix ms.
type Window struct{ Start, End int64 }

// Labels are the labelled anomaly windows of each device.
type Labels map[string][]Window

// ReadLabels reads NAB's windows.json: file path ("folder/file.csv") to
// [[start, end], ...], times as in the CSVs. Files become devices as
// ReadCSV names them (DeviceOf).
func ReadLabels(r io.Reader) (Labels, error) {
	var raw map[string][][2]string
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	l := Labels{}
	for file, ws := range raw {
		dev := DeviceOf(file)
		l[dev] = []Window{} // a series labelled with no anomaly
		for _, w := range ws {
			start, err := parseTime(w[0])
			if err != nil {
				return nil, fmt.Errorf("labels: %s: %w", file, err)
			}
			end, err := parseTime(w[1])
			if err != nil {
				return nil, fmt.Errorf("labels: %s: %w", file, err)
			}
			l[dev] = append(l[dev], Window{start, end})
		}
	}
	return l, nil
}

// SeriesScore is one series' line of the scoring table.
type SeriesScore struct {
	Device      string  `json:"device_id"`
	Windows     int     `json:"windows"`
	Detected    int     `json:"detected"`
	FalseAlarms int     `json:"false_alarms"`
	Weeks       float64 `json:"series_weeks"`
}

// Score is the scoring table: per series and in total.
type Score struct {
	Series      []SeriesScore `json:"series"`
	Windows     int           `json:"windows"`
	Detected    int           `json:"detected"`
	FalseAlarms int           `json:"false_alarms"`
	Weeks       float64       `json:"series_weeks"`
}

// PerWeek is false alarms per series-week.
func (s *Score) PerWeek() float64 {
	if s.Weeks == 0 {
		return 0
	}
	return float64(s.FalseAlarms) / s.Weeks
}

const week = float64(7 * 24 * time.Hour / time.Millisecond)

// ScoreAlerts scores a replay against labels: an alert is a transition to
// FIRING; a labelled window is detected when a FIRING alert's event time
// (Alert.At) lies within it; a FIRING outside every window of its device
// is a false alarm; a series covers its last event time minus its first.
// Every series of the replay is scored, labelled or not (an unlabelled
// one has no windows to find, so its every alert is a false alarm).
func ScoreAlerts(res *Result, labels Labels) Score {
	firing := map[string][]int64{}
	for _, a := range res.Alerts {
		if a.State == rules.Firing {
			firing[a.Device] = append(firing[a.Device], a.At)
		}
	}
	devices := make([]string, 0, len(res.Series))
	for d := range res.Series {
		devices = append(devices, d)
	}
	slices.Sort(devices)
	var s Score
	for _, d := range devices {
		span := res.Series[d]
		ss := SeriesScore{Device: d, Windows: len(labels[d]), Weeks: float64(span.Last-span.First) / week}
		for _, w := range labels[d] {
			for _, at := range firing[d] {
				if at >= w.Start && at <= w.End {
					ss.Detected++
					break
				}
			}
		}
		for _, at := range firing[d] {
			inside := false
			for _, w := range labels[d] {
				inside = inside || at >= w.Start && at <= w.End
			}
			if !inside {
				ss.FalseAlarms++
			}
		}
		s.Series = append(s.Series, ss)
		s.Windows += ss.Windows
		s.Detected += ss.Detected
		s.FalseAlarms += ss.FalseAlarms
		s.Weeks += ss.Weeks
	}
	return s
}

// WriteTable writes the scoring table for people.
func (s *Score) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-40s %8s %9s %13s %8s %8s\n", "series", "windows", "detected", "false alarms", "weeks", "FA/week")
	line := func(name string, windows, detected, fa int, weeks float64) {
		per := 0.0
		if weeks > 0 {
			per = float64(fa) / weeks
		}
		fmt.Fprintf(&b, "%-40s %8d %9d %13d %8.2f %8.2f\n", name, windows, detected, fa, weeks, per)
	}
	for _, ss := range s.Series {
		line(ss.Device, ss.Windows, ss.Detected, ss.FalseAlarms, ss.Weeks)
	}
	line("total", s.Windows, s.Detected, s.FalseAlarms, s.Weeks)
	_, err := io.WriteString(w, b.String())
	return err
}
