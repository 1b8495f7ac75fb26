// SPDX-License-Identifier: MIT

// gostart.go - goroutines released together, timed from their release to
// the last one's return: how the Go peers run the two sides of a
// ping-pong or a crowd of contenders.
// bench/bench.mk builds it into every Go peer.
package main

import (
	"sync"
	"time"
)

// race runs every function as a goroutine and returns the time from
// releasing them to all of them having returned.
func race(fs []func()) time.Duration {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, f := range fs {
		wg.Add(1)
		go func(f func()) {
			defer wg.Done()
			<-start
			f()
		}(f)
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return time.Since(t0)
}

// duel is race for two.
func duel(a, b func()) time.Duration {
	return race([]func(){a, b})
}
