// Package benchmarks measures tapline's shard loop against baselines on
// the same generated data. The benchmarks live in the _test files; this
// package holds the dataset generator they share, and package naive the
// straightforward consumer tapline is compared with. Results and the
// commands that produced them are in RESULTS.md.
package benchmarks
