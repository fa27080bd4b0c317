// Command gen writes docs/reference from mesh's command tree (`make docs`).
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands"
	"mesh.dev/mesh/internal/refdocs"
)

func main() {
	out := flag.String("out", "docs/reference", "directory to write the Markdown pages to")
	flag.Parse()
	root := commands.NewRootCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := refdocs.Write(root, *out); err != nil {
		fmt.Fprintln(os.Stderr, "refdocs:", err)
		os.Exit(1)
	}
}
