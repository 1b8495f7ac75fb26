// SPDX-License-Identifier: MIT

// switch_go.go - the switch peer on goroutines.
//
// -mode yield: two goroutines call runtime.Gosched() in turn, -n times in
// all (default 10,000,000; n/2 each); run it with GOMAXPROCS=1 so that
// each Gosched hands the thread to the other goroutine. Reported in ns
// per switch: wall time / n.
//
// -mode pingpong: two goroutines pass a token -n times (default
// 1,000,000) over two unbuffered channels: A sends on ping and receives on
// pong, B the reverse. Reported in ns per round trip: wall time / n. The
// thread count (1 or 2) is GOMAXPROCS from the environment; Go does not
// pin goroutines to threads, so with 2 its scheduler decides where B runs.
//
// Without -mode both are measured. Both goroutines first wait for a start
// channel to close; the clock runs from closing it to both having ended.
//
// Output: JSON lines as bench/bench.h writes them, impl "go".
package main

import (
	"flag"
	"runtime"
	"time"
)

func yield(n int) time.Duration {
	f := func() {
		for i := 0; i < n/2; i++ {
			runtime.Gosched()
		}
	}
	return duel(f, f)
}

func pingpong(n int) time.Duration {
	ping, pong := make(chan int), make(chan int)
	return duel(func() {
		for i := 0; i < n; i++ {
			ping <- i
			<-pong
		}
	}, func() {
		for i := 0; i < n; i++ {
			pong <- <-ping
		}
	})
}

func report(metric string, n int, d time.Duration) {
	printLine("switch", metric, "ns", int64(n),
		float64(d.Nanoseconds())/float64(n))
}

func main() {
	mode := flag.String("mode", "", "yield or pingpong; both if empty")
	n := flag.Int("n", 0, "yields (default 10000000) or round trips (default 1000000)")
	flag.Parse()
	if *mode != "" && *mode != "yield" && *mode != "pingpong" {
		badUsage("-mode is yield or pingpong")
	}

	if *mode != "pingpong" {
		y := *n
		if y == 0 {
			y = 10000000
		}
		y -= y % 2
		report("yield", y, yield(y))
	}
	if *mode != "yield" {
		p := *n
		if p == 0 {
			p = 1000000
		}
		report("pingpong", p, pingpong(p))
	}
}
