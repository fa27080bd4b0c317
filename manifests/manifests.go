// Package manifests embeds mesh's Helm charts: base (CRDs, RBAC, namespace),
// pilot (the control plane) and gateways (one ingress or egress gateway).
package manifests

//go:generate go run ../internal/crdschema/gen -out charts/base/templates/crds.yaml -gateway-api-out charts/base/templates/gateway-api-crds.yaml

import (
	"embed"
	"io/fs"
)

// Chart names, in the order they are applied.
const (
	Base     = "base"
	Pilot    = "pilot"
	Gateways = "gateways"
)

//go:embed all:charts
var charts embed.FS

// Charts returns the embedded charts directory; each chart is a subdirectory.
func Charts() fs.FS {
	sub, err := fs.Sub(charts, "charts")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// ChartFile returns one file of one chart, e.g. ChartFile(Pilot, "values.yaml").
func ChartFile(chart, name string) ([]byte, error) {
	return charts.ReadFile("charts/" + chart + "/" + name)
}
