package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

func writeReport(path string, env *Env, results []result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`go run ./bench`) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s.\n\n", env.Machine)
	fmt.Fprintf(&b, "Each figure is set beside a baseline measured in the same run; the ratio is figure ÷ baseline. ")
	fmt.Fprintf(&b, "Absolute numbers drift between runs on these shared machines; the ratios drift less.\n\n")
	fmt.Fprintf(&b, "| issue | figure | value | baseline | baseline value | ratio | target | met |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(&b, "| #%d | %s | **failed**: %s | | | | | |\n", r.Bench.Issue, r.Bench.Name, cell(r.Err.Error()))
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
			fmt.Fprintf(&b, "| #%d | %s | %.4g %s | %s | %s | %s | %s | %s |\n",
				r.Bench.Issue, cell(row.Figure), row.Value, row.Unit, cell(base), bval, ratio, cell(row.Target), met)
		}
	}
	fmt.Fprintf(&b, "\n## How each figure was measured\n\n")
	for _, r := range results {
		for _, row := range r.Rows {
			if row.Command != "" {
				fmt.Fprintf(&b, "- %s: `%s`\n", row.Figure, row.Command)
			}
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}
