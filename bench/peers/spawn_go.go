// SPDX-License-Identifier: MIT

// spawn_go.go - the Go peer of bench/spawn.c: exec.Command.
//
// Runs -n (default 1,000) subprocesses of /bin/true with
// exec.Command(...).Run(), 16 goroutines each taking the next one until
// none is left, so that 16 are in flight. A first, untimed run of 64
// (-warmup) warms up as the other spawn benchmarks do. Reported in ms per
// spawn: wall time / n. The thread count is GOMAXPROCS from the
// environment.
//
// Output: one JSON line as bench/bench.h writes them, impl "go", metric
// "window".
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

const window = 16

func run(n int64) {
	var next int64
	var wg sync.WaitGroup

	wg.Add(window)
	for i := 0; i < window; i++ {
		go func() {
			defer wg.Done()
			for atomic.AddInt64(&next, 1) <= n {
				if err := exec.Command("/bin/true").Run(); err != nil {
					fmt.Fprintln(os.Stderr, "spawn_go:", err)
					os.Exit(1)
				}
			}
		}()
	}
	wg.Wait()
}

func main() {
	n := flag.Int64("n", 1000, "subprocesses")
	warm := flag.Int64("warmup", 64, "untimed subprocesses first")
	flag.Parse()
	if *n < 1 {
		badUsage("-n must be at least 1")
	}
	if *warm > 0 {
		run(*warm)
	}
	t0 := time.Now()
	run(*n)
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6 / float64(*n)
	printLine("spawn", "window", "ms", *n, ms)
}
