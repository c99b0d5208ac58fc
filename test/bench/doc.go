// Package bench holds kanto-can's benchmarks. They need a real kernel with
// CAN, so they are built with -tags kernel and run in the QEMU guest by
// `make bench`, which prints the figures and the speed-up over the manual
// recipe. docs/benchmarks.md records them.
package bench
