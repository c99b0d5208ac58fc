// Command noop does nothing. The benchmarks time it to show the floor: what
// starting any static Go binary costs on the machine they run on.
package main

func main() {}
