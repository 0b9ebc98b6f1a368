// Package prefetch asks the CPU to start loading a cache line that will
// be needed soon, without waiting for it: the one instruction Go's
// compiler keeps to its runtime. A load that misses the caches blocks
// the instructions behind it from retiring; a prefetch does not, so the
// miss overlaps with the work in between.
package prefetch
