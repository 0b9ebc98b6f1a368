// Command plot draws benchmarks/results/scaling.png, throughput against
// fleet size for tapline, the naive consumer and DuckDB, from `go test
// -bench` output (make bench-plot):
//
//	go run ./benchmarks/plot -o benchmarks/results/scaling.png benchmarks/results/scaling.txt
//
// Series: BenchmarkLoop/devices=N (tapline's loop: decode, windows,
// rules), BenchmarkNaive/devices=N (the naive consumer, same job) and
// BenchmarkVersusDuckDB/devices=N/{duckdb,tapline} (tumbling aggregates
// written as Parquet, DuckDB on one thread), each by its records/s.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

var line = regexp.MustCompile(`^Benchmark(\w+)/devices=(\d+)(k|M)?(?:/(\w+))?-\d+\s.*?([\d.]+) records/s`)

func main() {
	out := flag.String("o", "benchmarks/results/scaling.png", "output PNG")
	flag.Parse()
	series := map[string]map[float64]float64{}
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			fail(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			m := line.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			n, _ := strconv.ParseFloat(m[2], 64)
			switch m[3] {
			case "k":
				n *= 1e3
			case "M":
				n *= 1e6
			}
			rate, _ := strconv.ParseFloat(m[5], 64)
			name := map[string]string{"Loop": "tapline loop (decode, windows, rules)", "Naive": "naive Go consumer (same job)"}[m[1]]
			if m[1] == "VersusDuckDB" {
				name = map[string]string{"duckdb": "DuckDB, 1 thread (tumbling aggregates to Parquet)", "tapline": "tapline (tumbling aggregates to Parquet)"}[m[4]]
			}
			if name == "" {
				continue
			}
			if series[name] == nil {
				series[name] = map[float64]float64{}
			}
			series[name][n] = rate // the last run of a size wins
		}
		f.Close()
	}
	if len(series) == 0 {
		fail(fmt.Errorf("no records/s figures in %v", flag.Args()))
	}
	p := plot.New()
	p.Title.Text = "Records/s on one core against fleet size"
	p.X.Label.Text = "devices"
	p.Y.Label.Text = "records/s"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = false
	p.Legend.Left = true
	names := make([]string, 0, len(series))
	for n := range series {
		names = append(names, n)
	}
	sort.Strings(names)
	var args []any
	for _, n := range names {
		var xys plotter.XYs
		for x, y := range series[n] {
			xys = append(xys, plotter.XY{X: x, Y: y})
		}
		sort.Slice(xys, func(i, j int) bool { return xys[i].X < xys[j].X })
		args = append(args, n, xys)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		fail(err)
	}
	if err := p.Save(8*vg.Inch, 5*vg.Inch, *out); err != nil {
		fail(err)
	}
	fmt.Printf("plot: %s (%s)\n", *out, strings.Join(names, "; "))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "plot:", err)
	os.Exit(1)
}
