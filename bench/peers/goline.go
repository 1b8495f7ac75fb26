// SPDX-License-Identifier: MIT

// goline.go - the JSON line a Go peer prints for one figure, as
// bench/bench.h writes them (impl "go" unless printLineAs names another,
// one run, threads GOMAXPROCS).
// bench/bench.mk builds it into every Go peer.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

type goLine struct {
	Workload string    `json:"workload"`
	Impl     string    `json:"impl"`
	Metric   string    `json:"metric"`
	Unit     string    `json:"unit"`
	N        int64     `json:"n"`
	Threads  int       `json:"threads"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	Runs     int       `json:"runs"`
	Values   []float64 `json:"values"`
	Cmd      string    `json:"cmd"`
}

// printLine prints figure v of workload's metric, measured over n.
func printLine(workload, metric, unit string, n int64, v float64) {
	printLineAs("go", workload, metric, unit, n, v)
}

// printLineAs is printLine for a peer that is not plain goroutines, named
// impl in the line (handoff_go.go's goroutines locked to threads).
func printLineAs(impl, workload, metric, unit string, n int64, v float64) {
	cmd := strings.Join(os.Args, " ")
	if g, ok := os.LookupEnv("GOMAXPROCS"); ok {
		cmd = "GOMAXPROCS=" + g + " " + cmd
	}
	line, _ := json.Marshal(goLine{workload, impl, metric, unit, n,
		runtime.GOMAXPROCS(0), v, v, v, 1, []float64{v}, cmd})
	fmt.Println(string(line))
}

// badUsage reports a bad flag value, prefixed with the program's name,
// and exits 2.
func badUsage(msg string) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", filepath.Base(os.Args[0]), msg)
	os.Exit(2)
}
