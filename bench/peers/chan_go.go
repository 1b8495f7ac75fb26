// SPDX-License-Identifier: MIT

// chan_go.go - the chan peer on goroutines.
//
// -mode pingpong: two goroutines pass a token -n times (default
// 1,000,000) over two unbuffered channels: A sends on ping and receives
// on pong, B the reverse. Reported in ns per round trip: wall time / n.
// The thread count is GOMAXPROCS from the environment (1 or 2); Go does
// not pin goroutines, so its scheduler decides where each runs.
//
// -mode mutex: 1,000 goroutines per GOMAXPROCS each lock a sync.Mutex,
// increment a shared counter and unlock, -n times (default 1,000).
// Reported in ns per lock/unlock pair: wall time / (goroutines * n).
//
// All goroutines first wait for a start channel to close; the clock runs
// from closing it to all of them having ended.
//
// Output: JSON lines as bench/bench.h writes them, impl "go".
package main

import (
	"flag"
	"runtime"
	"sync"
	"time"
)

func pingpong(n int) time.Duration {
	ping, pong := make(chan int), make(chan int)
	return race([]func(){func() {
		for i := 0; i < n; i++ {
			ping <- i
			if <-pong != i {
				panic("pong out of order")
			}
		}
	}, func() {
		for i := 0; i < n; i++ {
			pong <- <-ping
		}
	}})
}

func mutex(n, goroutines int) time.Duration {
	var mu sync.Mutex
	counter := 0
	fs := make([]func(), goroutines)
	for i := range fs {
		fs[i] = func() {
			for j := 0; j < n; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}
	}
	d := race(fs)
	if counter != n*goroutines {
		panic("lost increments")
	}
	return d
}

// measurement is one JSON line as bench/bench.h writes them.
func report(metric string, n int, d time.Duration) {
	printLine("chan", metric, "ns", int64(n),
		float64(d.Nanoseconds())/float64(n))
}

func main() {
	mode := flag.String("mode", "", "pingpong or mutex")
	n := flag.Int("n", 0, "round trips (default 1000000) or increments per goroutine (default 1000)")
	flag.Parse()
	switch *mode {
	case "pingpong":
		p := *n
		if p == 0 {
			p = 1000000
		}
		report("pingpong", p, pingpong(p))
	case "mutex":
		p := *n
		if p == 0 {
			p = 1000
		}
		g := 1000 * runtime.GOMAXPROCS(0)
		report("mutex", p*g, mutex(p, g))
	default:
		badUsage("-mode is pingpong or mutex")
	}
}
