// Command compare measures a change the way benchmarks/RESULTS.md does
// on a noisy host: the same Go benchmarks from two revisions, run at the
// same time, each test binary pinned to one of the machine's two CPUs and
// the CPUs swapped every round, so both sides see the same host at the
// same moment. One after the other, this VM's runs drift by 20-60% from
// hour to hour; side by side, the rounds' pairs still say which is faster.
//
//	go run ./benchmarks/compare [-n rounds] [-pkg ./benchmarks] OLD NEW 'Regexp' [test flags]
//
// OLD and NEW are git revisions; "." is the working tree. The benchmarks
// run in their own revision's package directory (a worktree under the
// system's temporary directory, removed afterwards; .tools and
// deploy/local/node_modules are linked from the working tree for the
// benchmarks that need DuckDB). Test flags go to both binaries, e.g.
// -test.benchtime 2s. It prints each benchmark's metrics: the median of
// each side, new/old, and in how many rounds new was lower. Linux only
// (taskset).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

func main() {
	rounds := flag.Int("n", 6, "rounds (each runs both binaries once)")
	pkg := flag.String("pkg", "./benchmarks", "the package whose benchmarks run")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: compare [-n rounds] [-pkg ./benchmarks] OLD NEW 'Regexp' [test flags]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 3 || *rounds < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*rounds, *pkg, flag.Arg(0), flag.Arg(1), flag.Arg(2), flag.Args()[3:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(rounds int, pkg, oldRev, newRev, pattern string, flags []string, out io.Writer) error {
	top, err := output("git", "rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "compare")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var sides [2]side
	for i, rev := range []string{oldRev, newRev} {
		s, err := build(top, tmp, pkg, rev, i)
		if s.tree != "" && s.tree != top {
			defer exec.Command("git", "-C", top, "worktree", "remove", "--force", s.tree).Run()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rev, err)
		}
		sides[i] = s
	}
	args := append([]string{"-test.run", "^$", "-test.bench", pattern, "-test.cpu", "1"}, flags...)
	res := results{}
	for r := range rounds {
		var wg sync.WaitGroup
		var outs [2][]byte
		var errs [2]error
		for i, s := range sides {
			cpu := strconv.Itoa((i + r) % 2)
			wg.Go(func() {
				cmd := exec.Command("taskset", append([]string{"-c", cpu, s.binary}, args...)...)
				cmd.Dir = s.dir
				outs[i], errs[i] = cmd.CombinedOutput()
			})
		}
		wg.Wait()
		for i := range sides {
			if errs[i] != nil {
				return fmt.Errorf("round %d, %s: %v\n%s", r+1, sides[i].rev, errs[i], outs[i])
			}
			res.add(i, outs[i])
		}
		fmt.Fprintf(os.Stderr, "round %d of %d\n", r+1, rounds)
	}
	res.print(out, oldRev, newRev)
	return nil
}

type side struct {
	rev, tree, dir, binary string
}

// build compiles rev's test binary of pkg; rev "." is the working tree.
func build(top, tmp, pkg, rev string, i int) (side, error) {
	s := side{rev: rev, tree: top, binary: filepath.Join(tmp, fmt.Sprintf("bench%d", i))}
	if rev != "." {
		s.tree = filepath.Join(tmp, fmt.Sprintf("tree%d", i))
		if _, err := output("git", "-C", top, "worktree", "add", "--detach", s.tree, rev); err != nil {
			s.tree = ""
			return s, err
		}
		for _, l := range []string{".tools", "deploy/local/node_modules"} {
			if _, err := os.Stat(filepath.Join(top, l)); err == nil {
				os.Symlink(filepath.Join(top, l), filepath.Join(s.tree, l))
			}
		}
	}
	s.dir = filepath.Join(s.tree, pkg)
	cmd := exec.Command("go", "test", "-c", "-o", s.binary, ".")
	cmd.Dir = s.dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return s, fmt.Errorf("%v\n%s", err, b)
	}
	return s, nil
}

func output(name string, args ...string) (string, error) {
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return strings.TrimSpace(string(b)), nil
}

// results holds each metric's values by side, in the order first seen.
type results struct {
	keys   []string
	values map[string]*[2][]float64
}

// add reads `go test -bench` output: "BenchmarkX-1  N  v unit  v unit ...".
func (r *results) add(i int, out []byte) {
	if r.values == nil {
		r.values = map[string]*[2][]float64{}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if j := strings.LastIndexByte(name, '-'); j > 0 {
			if _, err := strconv.Atoi(name[j+1:]); err == nil {
				name = name[:j] // the GOMAXPROCS suffix
			}
		}
		for k := 2; k+1 < len(f); k += 2 {
			v, err := strconv.ParseFloat(f[k], 64)
			if err != nil {
				continue
			}
			key := name + " " + f[k+1]
			if r.values[key] == nil {
				r.values[key] = &[2][]float64{}
				r.keys = append(r.keys, key)
			}
			r.values[key][i] = append(r.values[key][i], v)
		}
	}
}

func (r *results) print(w io.Writer, oldRev, newRev string) {
	fmt.Fprintf(w, "old %s, new %s: medians; new lower in k of n rounds\n", oldRev, newRev)
	for _, key := range r.keys {
		v := r.values[key]
		if len(v[0]) == 0 || len(v[1]) == 0 {
			continue
		}
		o, n := median(v[0]), median(v[1])
		lower := 0
		for k := range min(len(v[0]), len(v[1])) {
			if v[1][k] < v[0][k] {
				lower++
			}
		}
		ratio := "-"
		if o != 0 {
			ratio = strconv.FormatFloat(n/o, 'f', 3, 64)
		}
		fmt.Fprintf(w, "%-60s %14.4g %14.4g  new/old %s  lower %d of %d\n", key, o, n, ratio, lower, min(len(v[0]), len(v[1])))
	}
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
