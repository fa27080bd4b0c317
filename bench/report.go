package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"
)

// writeReport rewrites the report at path. Rows of benchmarks that did not
// run this time (a `-only` run) are carried over from the existing report,
// each still marked with the run it came from, so a partial run never drops
// another issue's figures.
func writeReport(path string, env *Env, results []result) error {
	ran := map[string]bool{}
	for _, r := range results {
		ran[r.Bench.Name] = true
	}
	keptRows, keptHow := carriedOver(path, ran)
	stamp := time.Now().UTC().Format("2006-01-02 15:04 MST")

	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`go run ./bench`; `-only NAME,...` reruns some and keeps the rest). ")
	fmt.Fprintf(&b, "Last run %s on: %s.\n\n", stamp, env.Machine)
	fmt.Fprintf(&b, "Each figure is set beside a baseline measured in the same run; the ratio is figure ÷ baseline. ")
	fmt.Fprintf(&b, "Absolute numbers drift between runs on these shared machines; the ratios drift less.\n\n")
	fmt.Fprintf(&b, "| bench | issue | figure | value | baseline | baseline value | ratio | target | met | run |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, line := range keptRows {
		fmt.Fprintln(&b, line)
	}
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(&b, "| %s | #%d | %s | **failed**: %s | | | | | | %s |\n", r.Bench.Name, r.Bench.Issue, r.Bench.Name, cell(r.Err.Error()), stamp)
		}
		for _, row := range r.Rows {
			base, bval, ratio := "", "", ""
			if row.Baseline != "" {
				base = row.Baseline
				bval = fmt.Sprintf("%.3g %s", row.BaselineValue, row.Unit)
				if row.BaselineValue != 0 {
					ratio = fmt.Sprintf("%.2f×", row.Value/row.BaselineValue)
				}
			}
			met := ""
			if row.Met != nil {
				met = map[bool]string{true: "yes", false: "**no**"}[*row.Met]
			}
			fmt.Fprintf(&b, "| %s | #%d | %s | %.4g %s | %s | %s | %s | %s | %s | %s |\n",
				r.Bench.Name, r.Bench.Issue, cell(row.Figure), row.Value, row.Unit, cell(base), bval, ratio, cell(row.Target), met, stamp)
		}
	}
	fmt.Fprintf(&b, "\n## How each figure was measured\n\n")
	for _, line := range keptHow {
		fmt.Fprintln(&b, line)
	}
	for _, r := range results {
		for _, row := range r.Rows {
			if row.Command != "" {
				fmt.Fprintf(&b, "- [%s] %s: `%s`\n", r.Bench.Name, row.Figure, row.Command)
			}
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// carriedOver returns the table rows and "how measured" lines of the existing
// report that belong to benchmarks not in ran.
func carriedOver(path string, ran map[string]bool) (rows, how []string) {
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, nil
	}
	s := bufio.NewScanner(bytes.NewReader(old))
	s.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		switch {
		case strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| bench |"):
			name := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(line, "|"), "|", 2)[0])
			if isBenchName(name) && !ran[name] {
				rows = append(rows, line)
			}
		case strings.HasPrefix(line, "- ["):
			name, _, ok := strings.Cut(strings.TrimPrefix(line, "- ["), "]")
			if ok && isBenchName(name) && !ran[name] {
				how = append(how, line)
			}
		}
	}
	return rows, how
}

func isBenchName(name string) bool {
	for _, b := range benches {
		if b.Name == name {
			return true
		}
	}
	return false
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}
