// Command mesh is the mesh command-line tool.
package main

import (
	"os"
	"runtime/debug"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands"
)

func main() {
	tuneGC()
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := commands.NewRootCommand(streams).Execute()
	os.Exit(exitCode(err, streams))
}

// tuneGC trades memory for time: a mesh command is short-lived, and with
// the default GOGC collecting garbage was half the CPU of `manifest
// generate`. The soft limit keeps long commands (large config dumps) from
// growing without bound. GOGC and GOMEMLIMIT in the environment still win.
// A command that holds everything it reads until it finishes would grow to
// five times that at GOGC=400, so such a command sets its own GOGC
// (mesh analyze: 100, see commands/analyze/gc.go).
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}
