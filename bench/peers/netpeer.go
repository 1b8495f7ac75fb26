// SPDX-License-Identifier: MIT

// netpeer.go - what the Go network peers (echo_go.go, http_go.go) share:
// their options, the listening socket, the ready line and the signals
// that stop them. Built together with each of them (see bench/bench.mk).
//
// The outside every server of the benchmark has (see echo_peer.h):
// -port N (0 picks one), -max-seconds S (stop by itself; 0 means never),
// listening on 127.0.0.1 only, "listening on 127.0.0.1:PORT" on stdout
// once ready, and exit status 0 on SIGINT or SIGTERM. Go's flag package
// takes --port as well as -port.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// listen parses the options and returns the listening socket after
// printing the ready line; name prefixes error messages.
func listen(name string) net.Listener {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0 picks one)")
	maxSeconds := flag.Int("max-seconds", 0, "stop after this long (0: never)")
	flag.Parse()

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		os.Exit(0)
	}()
	if *maxSeconds > 0 {
		time.AfterFunc(time.Duration(*maxSeconds)*time.Second, func() {
			fmt.Fprintln(os.Stderr, "stopping: -max-seconds reached")
			os.Exit(0)
		})
	}
	// os.Stdout is unbuffered: the line is out when Printf returns.
	fmt.Printf("listening on %s\n", ln.Addr())
	return ln
}
