// SPDX-License-Identifier: MIT

// http_go.go - the HTTP peer on Go's net/http: "hello" with status 200 on
// GET /, 404 on any other path, keep-alive on.
//
// Plain net/http with the default server settings, as a Go service would
// run; net/http adds its usual Date, Content-Type and Content-Length
// headers. Run it with GOMAXPROCS=1 to compare it with the
// single-threaded peers. Options, ready line and signals: netpeer.go.
package main

import (
	"fmt"
	"net/http"
	"os"
)

var hello = []byte("hello")

func handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Write(hello)
}

func main() {
	ln := listen("http_go")
	srv := &http.Server{Handler: http.HandlerFunc(handle)}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "http_go:", err)
		os.Exit(1)
	}
}
