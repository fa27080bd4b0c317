// Command gen writes the base chart's CRD templates: Istio's and mesh's
// from the API types, the Gateway API's from its module.
package main

import (
	"flag"
	"fmt"
	"os"

	"mesh.dev/mesh/internal/crdschema"
)

func main() {
	out := flag.String("out", "manifests/charts/base/templates/crds.yaml", "where to write the template")
	gwOut := flag.String("gateway-api-out", "manifests/charts/base/templates/gateway-api-crds.yaml", "where to write the Gateway API CRD template")
	flag.Parse()
	b, err := crdschema.Template()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err == nil {
		b, err = crdschema.GatewayAPITemplate()
	}
	if err == nil {
		err = os.WriteFile(*gwOut, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdschema gen:", err)
		os.Exit(1)
	}
}
