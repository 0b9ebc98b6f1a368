//go:build amd64 || arm64

package prefetch

import "unsafe"

// Line starts loading the cache line holding p into every cache level.
//
//go:noescape
func Line(p unsafe.Pointer)

// Lines starts loading n consecutive cache lines from the one holding p.
//
//go:noescape
func Lines(p unsafe.Pointer, n int)
