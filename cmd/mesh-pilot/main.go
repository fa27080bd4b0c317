// Command mesh-pilot is the mesh control plane.
package main

import (
	"fmt"
	"os"

	"mesh.dev/mesh/internal/version"
)

func main() {
	v := version.Get()
	fmt.Fprintf(os.Stdout, "mesh-pilot %s (commit %s)\n", v.Version, v.GitCommit)
}
