// SPDX-License-Identifier: MIT

// echo_go.go - the echo peer on Go's net package: one goroutine per
// connection, each reading into its own 4 KiB buffer and writing back what
// it read.
//
// The way Go is meant to be written: the runtime's netpoller (epoll)
// parks a goroutine whose read would block. Run it with GOMAXPROCS=1 to
// compare it with the single-threaded peers. Go sets TCP_NODELAY on every
// connection by default. Options, ready line and signals: netpeer.go.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func main() {
	ln := listen("echo_go")
	for {
		c, err := ln.Accept()
		if err != nil {
			// EMFILE and the like: say so, back off, go on.
			fmt.Fprintln(os.Stderr, "accept:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}
