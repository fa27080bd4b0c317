// Command mesh-proxy is the mesh data plane proxy: an Envoy-compatible xDS
// client and HTTP/TCP proxy with Envoy's admin API.
package main

import (
	"os"

	"mesh.dev/mesh/internal/proxy/agent"
)

func main() {
	os.Exit(agent.Main(os.Args[1:], os.Stdout, os.Stderr))
}
