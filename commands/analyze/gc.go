package analyze

import (
	"os"
	"runtime/debug"
)

// analyzeGCPercent is Go's default GOGC. mesh starts every command at
// GOGC=400 (cmd/mesh), which suits commands whose garbage dies young; an
// analysis keeps every object it reads until it reports, so at 400 its
// heap would grow to about five times the snapshot before a collection,
// and at 100 it stays near twice (10k resources: 133 -> ~100 MiB peak RSS,
// for about a tenth more CPU). The process-wide 1 GiB soft limit stays.
const analyzeGCPercent = 100

// tuneGC applies analyzeGCPercent unless the user set GOGC.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(analyzeGCPercent)
	}
}
