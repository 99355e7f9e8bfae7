// Command pafstock is one stock memberlist node of the benchmarks' baselines (the membership
// rows, and the idle row's floor): procs.StockChild, in a program that links memberlist and
// nothing else of the benchmark runner. Run as pafbench itself, a node also carried what
// pafbench links (NATS's server starts a goroutine that reads /proc every second), which
// is no part of memberlist's cost. The runner builds it and starts it with
// PAFBENCH_STOCK_CHILD set to the node's name.
package main

import (
	"fmt"
	"os"

	"github.com/paf-mesh/paf-mesh/bench/internal/procs"
)

func main() {
	name := os.Getenv(procs.StockChildEnv)
	if name == "" {
		fmt.Fprintf(os.Stderr, "pafstock: a stock memberlist node of pafbench's baselines; pafbench starts it with %s set to its name\n", procs.StockChildEnv)
		os.Exit(2)
	}
	os.Exit(procs.StockChild(name, os.Stdin, os.Stdout))
}
