// SPDX-License-Identifier: MIT

// sleep_go.go - the sleep peer on goroutines.
//
// -n goroutines (default 100,000) each call time.Sleep(-ms) (default 100
// ms), started from the main goroutine and waited for with a WaitGroup.
// Three figures, as bench/sleep.c reports them:
//   - "wall": ms from the first go statement to wg.Wait() returning;
//   - "rss_per_task": ru_maxrss after they have all ended minus ru_maxrss
//     just before the first go statement, divided by n, in KiB;
//   - "peak_alive": the most goroutines asleep at the same moment; below
//     n, the first ones ended before the last ones started;
//   - "rss_per_alive": the same memory divided by peak_alive instead.
//
// The thread count is GOMAXPROCS from the environment. There is no
// warm-up: it would raise the baseline peak and hide the memory measured.
//
// Output: four JSON lines as bench/bench.h writes them, impl "go".
package main

import (
	"flag"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func maxrssKiB() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return int64(ru.Maxrss) // KiB on Linux
}

// raise sets *p to v if v is larger.
func raise(p *int64, v int64) {
	for old := atomic.LoadInt64(p); v > old; old = atomic.LoadInt64(p) {
		if atomic.CompareAndSwapInt64(p, old, v) {
			return
		}
	}
}

func report(metric, unit string, n int, v float64) {
	printLine("sleep", metric, unit, int64(n), v)
}

func main() {
	n := flag.Int("n", 100000, "goroutines")
	ms := flag.Int("ms", 100, "sleep per goroutine in ms")
	flag.Parse()
	if *n < 1 {
		badUsage("-n must be at least 1")
	}

	var wg sync.WaitGroup
	var alive, peak int64
	d := time.Duration(*ms) * time.Millisecond
	before := maxrssKiB()
	t0 := time.Now()
	wg.Add(*n)
	for i := 0; i < *n; i++ {
		go func() {
			raise(&peak, atomic.AddInt64(&alive, 1))
			time.Sleep(d)
			atomic.AddInt64(&alive, -1)
			wg.Done()
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	after := maxrssKiB()

	report("wall", "ms", *n, float64(wall.Nanoseconds())/1e6)
	report("rss_per_task", "KiB", *n, float64(after-before)/float64(*n))
	p := atomic.LoadInt64(&peak)
	if p == 0 {
		p = 1
	}
	report("peak_alive", "tasks", *n, float64(p))
	report("rss_per_alive", "KiB", *n, float64(after-before)/float64(p))
}
