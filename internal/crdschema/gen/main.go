// Command gen writes the base chart's CRD template from the API types.
package main

import (
	"flag"
	"fmt"
	"os"

	"mesh.dev/mesh/internal/crdschema"
)

func main() {
	out := flag.String("out", "manifests/charts/base/templates/crds.yaml", "where to write the template")
	flag.Parse()
	b, err := crdschema.Template()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdschema gen:", err)
		os.Exit(1)
	}
}
