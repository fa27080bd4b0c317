// Command mesh-proxy is the mesh data plane proxy.
package main

import (
	"fmt"
	"os"

	"mesh.dev/mesh/internal/version"
)

func main() {
	v := version.Get()
	fmt.Fprintf(os.Stdout, "mesh-proxy %s (commit %s)\n", v.Version, v.GitCommit)
}
