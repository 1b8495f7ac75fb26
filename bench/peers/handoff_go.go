// SPDX-License-Identifier: MIT

// handoff_go.go - the handoff peer on goroutines.
//
// -mode pingpong: two goroutines pass a token -n times (default
// 1,000,000) over two unbuffered channels: A sends on ping and receives
// on pong, B the reverse. ns per round trip: wall time / n. Go does not
// pin goroutines, and with GOMAXPROCS=2 its scheduler keeps both on one P
// (a woken goroutine goes to its waker's runnext), so this is a hand-off
// on one thread. Impl "go", metric "pingpong".
//
// -mode pingpong-locked: the same with each goroutine locked to its own
// thread (runtime.LockOSThread), so every hand-off wakes the other
// thread, as braid's pinned tasks do. Default -n 100,000. Impl
// "go-locked", metric "pingpong".
//
// -mode idle: nothing to do for -ms milliseconds (default 5,000); the
// process's CPU time over that window (getrusage), in ms of CPU per
// second. The window opens 200 ms after start.
//
// -mode light: one hand-off every millisecond for -ms ms: a goroutine
// sleeps to the next millisecond and sends on an unbuffered channel
// another goroutine receives from. CPU time over wall time, in percent
// of one CPU.
//
// -mode storm: one goroutine starts -n goroutines (default 1,000,000) in
// a loop; each records the time from the line before its go statement
// to its own first line. Two lines: the longest wait (storm-max) and the
// 99.9th percentile (storm-p999), in us.
//
// Output: JSON lines as bench/bench.h writes them.
package main

import (
	"flag"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func pingpong(n int, locked bool) time.Duration {
	ping, pong := make(chan int), make(chan int)
	var ready sync.WaitGroup
	ready.Add(2)
	lock := func() {
		if locked {
			runtime.LockOSThread()
		}
		ready.Done()
		ready.Wait()
	}
	return duel(func() {
		lock()
		for i := 0; i < n; i++ {
			ping <- i
			if <-pong != i {
				panic("pong out of order")
			}
		}
	}, func() {
		lock()
		for i := 0; i < n; i++ {
			pong <- <-ping
		}
	})
}

func cpuNs() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// window waits for start-up to settle and returns the wall and CPU clocks.
func window() (time.Time, int64) {
	time.Sleep(200 * time.Millisecond)
	return time.Now(), cpuNs()
}

func idle(ms int) float64 {
	t0, c0 := window()
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return float64(cpuNs()-c0) * 1000 / float64(time.Since(t0).Nanoseconds())
}

func light(ms int) float64 {
	ch := make(chan int)
	done := make(chan struct{})
	t0, c0 := window()
	go func() {
		for i := 0; i < ms; i++ {
			if <-ch != i {
				panic("tick out of order")
			}
		}
		close(done)
	}()
	for i := 0; i < ms; i++ {
		time.Sleep(time.Until(t0.Add(time.Duration(i+1) * time.Millisecond)))
		ch <- i
	}
	<-done
	return float64(cpuNs()-c0) * 100 / float64(time.Since(t0).Nanoseconds())
}

func storm(n int) (float64, float64) {
	spawned := make([]int64, n)
	waited := make([]int64, n)
	var left int64 = int64(n)
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			spawned[i] = int64(time.Since(t0))
			go func(i int) {
				waited[i] = int64(time.Since(t0)) - spawned[i]
				if atomic.AddInt64(&left, -1) == 0 {
					close(done)
				}
			}(i)
		}
	}()
	<-done
	sort.Slice(waited, func(a, b int) bool { return waited[a] < waited[b] })
	return float64(waited[n-1]) / 1000, float64(waited[int(float64(n-1)*0.999)]) / 1000
}

func main() {
	mode := flag.String("mode", "", "pingpong, pingpong-locked, idle, light or storm")
	n := flag.Int("n", 0, "round trips or goroutines")
	ms := flag.Int("ms", 5000, "duration of idle and light, ms")
	flag.Parse()
	switch *mode {
	case "pingpong", "pingpong-locked":
		locked := *mode == "pingpong-locked"
		p := *n
		if p == 0 {
			p = 1000000
			if locked {
				p = 100000
			}
		}
		d := pingpong(p, locked)
		impl := "go"
		if locked {
			impl = "go-locked"
		}
		printLineAs(impl, "handoff", "pingpong", "ns", int64(p),
			float64(d.Nanoseconds())/float64(p))
	case "idle":
		printLine("handoff", "idle", "ms/s", int64(*ms), idle(*ms))
	case "light":
		printLine("handoff", "light", "%", int64(*ms), light(*ms))
	case "storm":
		p := *n
		if p == 0 {
			p = 1000000
		}
		mx, p999 := storm(p)
		printLine("handoff", "storm-max", "us", int64(p), mx)
		printLine("handoff", "storm-p999", "us", int64(p), p999)
	default:
		badUsage("-mode is pingpong, pingpong-locked, idle, light or storm")
	}
}
