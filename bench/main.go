// Command bench runs the project's benchmarks and rewrites docs/benchmarks.md.
//
// Every benchmark measures its baseline in the same run, because these
// machines are noisy and only ratios taken side by side mean anything.
// Benchmarks register themselves from their own file with register().
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Row is one measured figure, set beside its baseline and its target.
type Row struct {
	Figure        string  // what was measured, e.g. "manifest generate --set profile=demo (process, median)"
	Value         float64 // the measurement
	Unit          string  // "ms", "MiB", "s", ...
	Baseline      string  // what it is compared with, measured in the same run ("" when there is none)
	BaselineValue float64 // the baseline's measurement, in the same unit
	Target        string  // the issue's target, e.g. "< 150 ms"
	Met           *bool   // whether the target holds (nil when it cannot be judged)
	Command       string  // how to reproduce the figure
}

// Bench is one named group of measurements.
type Bench struct {
	Name  string // short name for -only, e.g. "render"
	Issue int    // the issue that asks for it
	Run   func(env *Env) ([]Row, error)
}

var benches []Bench

func register(b Bench) { benches = append(benches, b) }

func main() {
	only := flag.String("only", "", "comma-separated benchmark names to run (default: all)")
	out := flag.String("out", "docs/benchmarks.md", "where to write the report (relative to the repository's root, or absolute)")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	env, err := newEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	report := *out
	if !filepath.IsAbs(report) {
		report = filepath.Join(env.Root, report)
	}
	// Said now, not after a run of many minutes that has nowhere to go.
	if st, err := os.Stat(filepath.Dir(report)); err != nil || !st.IsDir() {
		fmt.Fprintf(os.Stderr, "bench: -out %s: folder %s does not exist\n", *out, filepath.Dir(report))
		os.Exit(64)
	}
	sort.Slice(benches, func(i, j int) bool { return benches[i].Name < benches[j].Name })
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	var results []result
	failed := false
	for _, b := range benches {
		if len(want) > 0 && !want[b.Name] {
			continue
		}
		start := time.Now()
		slog.Info("running benchmark", "name", b.Name)
		rows, err := b.Run(env)
		if err != nil {
			slog.Error("benchmark failed", "name", b.Name, "err", err)
			failed = true
		}
		results = append(results, result{Bench: b, Rows: rows, Err: err, Took: time.Since(start)})
	}
	if err := writeReport(report, env, results); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

type result struct {
	Bench Bench
	Rows  []Row
	Err   error
	Took  time.Duration
}
