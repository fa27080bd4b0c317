package main

import (
	"errors"
	"fmt"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands"
	"mesh.dev/mesh/internal/cli"
)

// exitCode prints err and maps it to the exit code scripts rely on; this is
// the only place where errors become exit codes.
func exitCode(err error, streams genericiooptions.IOStreams) int {
	if err == nil {
		return cli.ExitOK
	}
	var silent *cli.SilentError
	if errors.As(err, &silent) {
		return silent.Code
	}
	fmt.Fprintf(streams.ErrOut, "Error: %v\n", err)
	var findings *cli.FindingsError
	switch {
	case errors.As(err, &findings):
		return cli.ExitFindings
	case cli.IsUsage(err), commands.IsUnknownCommand(err):
		fmt.Fprintln(streams.ErrOut, "Run 'mesh --help' for usage.")
		return cli.ExitUsage
	case cli.IsData(err):
		return cli.ExitData
	default:
		return cli.ExitError
	}
}
