package service

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// BytesPerSeries is what one live (device, metric) series holds in a
// shard's memory: BenchmarkLoop's B/series at 10k devices (558 bytes,
// benchmarks/RESULTS.md), rounded up for the batch rows and snapshot it
// also costs.
const BytesPerSeries = 600

// memoryLimit is the process's memory limit in bytes: the smaller of
// GOMEMLIMIT and the container's cgroup limit (v2, then v1); 0 when
// neither is set. A variable so tests can set it.
var memoryLimit = func() int64 {
	limit := debug.SetMemoryLimit(-1) // math.MaxInt64 unless GOMEMLIMIT is set
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			limit = min(limit, n)
		}
		break
	}
	if limit >= 1<<60 { // unlimited
		return 0
	}
	return limit
}

// maxSeriesFor is the default bound on a shard's live series: half the
// memory (the rest is for batches being encoded, snapshots and the
// runtime) at BytesPerSeries each, shared by the shards a task may hold
// (kcl.max_leases; one when unlimited). 0 (the windows package's
// default) when the memory is not limited.
func maxSeriesFor(memory int64, maxLeases int) int {
	if memory <= 0 {
		return 0
	}
	n := memory / 2 / BytesPerSeries / int64(max(maxLeases, 1))
	return int(min(max(n, 1), math.MaxInt32))
}
