// SPDX-License-Identifier: MIT

// fib_go.go - the fib peer on goroutines.
//
// Same recursion as bench/fib.c: each call with n >= 2 starts a goroutine
// for fib(n-1), computes fib(n-2) itself and receives the child's value
// from a channel (buffered, so the child never waits for the parent). The
// thread count is GOMAXPROCS from the environment. One untimed warm-up run
// of fib(-warmup) (default 20); the clock covers the timed fib(-n)
// (default 30) called from the main goroutine.
//
// Output: one JSON line as bench/bench.h writes it, impl "go".
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func fib(n int) int {
	if n < 2 {
		return n
	}
	ch := make(chan int, 1)
	go func() { ch <- fib(n - 1) }()
	b := fib(n - 2)
	return <-ch + b
}

func fibIter(n int) int {
	a, b := 0, 1
	for ; n > 0; n-- {
		a, b = b, a+b
	}
	return a
}

func main() {
	n := flag.Int("n", 30, "fib argument")
	warmup := flag.Int("warmup", 20, "untimed warm-up argument, 0 for none")
	flag.Parse()

	if *warmup > 0 && fib(*warmup) != fibIter(*warmup) {
		fmt.Fprintln(os.Stderr, "fib_go: wrong warm-up result")
		os.Exit(1)
	}
	t0 := time.Now()
	got := fib(*n)
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	if got != fibIter(*n) {
		fmt.Fprintf(os.Stderr, "fib_go: fib(%d) gave %d\n", *n, got)
		os.Exit(1)
	}
	printLine("fib", "wall", "ms", int64(*n), ms)
}
