// SPDX-License-Identifier: MIT

// skynet_go.go - the skynet peer on goroutines (the original skynet
// benchmark's Go version).
//
// Same tree as bench/skynet.c: each inner node starts its 10 children as
// goroutines that send their sums on the node's channel, and adds up what
// it receives; each of the -n leaves (default 1,000,000) sends its
// number. The thread count is GOMAXPROCS from the environment. One untimed
// warm-up tree of -warmup leaves (default 10,000); the clock covers the
// timed tree, started from the main goroutine.
//
// Output: one JSON line as bench/bench.h writes it, impl "go".
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func skynet(c chan<- int, num, size int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	step := size / 10
	for i := 0; i < 10; i++ {
		go skynet(rc, num+i*step, step)
	}
	sum := 0
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func run(n int) int {
	c := make(chan int)
	go skynet(c, 0, n)
	return <-c
}

func powerOf10(n int) bool {
	for n > 1 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

func main() {
	n := flag.Int("n", 1000000, "leaves, a power of 10")
	warmup := flag.Int("warmup", 10000, "untimed warm-up leaves, 0 for none")
	flag.Parse()
	if !powerOf10(*n) || (*warmup != 0 && !powerOf10(*warmup)) {
		badUsage("-n and -warmup must be powers of 10")
	}

	if *warmup > 0 && run(*warmup) != *warmup*(*warmup-1)/2 {
		fmt.Fprintln(os.Stderr, "skynet_go: wrong warm-up sum")
		os.Exit(1)
	}
	t0 := time.Now()
	got := run(*n)
	ms := float64(time.Since(t0).Nanoseconds()) / 1e6
	if got != *n*(*n-1)/2 {
		fmt.Fprintf(os.Stderr, "skynet_go: sum %d, want %d\n", got, *n*(*n-1)/2)
		os.Exit(1)
	}
	printLine("skynet", "wall", "ms", int64(*n), ms)
}
