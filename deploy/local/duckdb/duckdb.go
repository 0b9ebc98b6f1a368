// Package duckdb runs SQL in DuckDB, tapline's stand-in for Athena in
// tests, through the pinned npm package in deploy/local (installed by
// `make test`). Tests use it to read the Parquet tapline writes with
// hive partitioning, as Athena would, and compare the answers with the
// engine's own.
package duckdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/tapline/tapline/deploy/local/server"
)

// Result is a query's answer. Values are as DuckDB renders them in JSON:
// strings for BIGINT and timestamps, numbers for DOUBLE.
type Result struct {
	Columns []string `json:"columns"`
	Types   []string `json:"types"`
	Rows    [][]any  `json:"rows"`
	// Elapsed is how long DuckDB took for the statement, without node's
	// start-up: the figure benchmarks report.
	ElapsedMs float64 `json:"elapsed_ms"`
}

// dir is deploy/local, found from this file's location so tests in any
// package can use it.
func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// ErrUnavailable says node or the npm package is missing: run `make
// local-stack` (part of `make test`).
var ErrUnavailable = fmt.Errorf("duckdb: node or deploy/local/node_modules: %w", server.ErrMissing)

// Available reports whether queries can run.
func Available() error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if _, err := os.Stat(filepath.Join(dir(), "node_modules", "@duckdb", "node-api")); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Query runs one SQL statement.
func Query(sql string) (*Result, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", filepath.Join(dir(), "duckdb-query.mjs"), sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("duckdb: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("duckdb: decode result: %w", err)
	}
	return &r, nil
}
