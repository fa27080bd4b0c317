// Command mesh is the mesh command-line tool.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := commands.NewRootCommand(streams).Execute()
	os.Exit(exitCode(err, streams))
}
