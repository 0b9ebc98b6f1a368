package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// binDir holds the binaries the tests run, built once per test process
// and removed by TestMain.
var binDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "tapline-bin-*") })

var builds sync.Map // package path → func() (string, error)

// binary returns the binary of the package at pkg (relative to this
// directory), building it on first use.
func binary(tb testing.TB, pkg string) string {
	tb.Helper()
	build, _ := builds.LoadOrStore(pkg, sync.OnceValues(func() (string, error) {
		dir, err := binDir()
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, filepath.Base(filepath.Join(must(os.Getwd()), pkg)))
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
		return bin, nil
	}))
	bin, err := build.(func() (string, error))()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := binDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}
