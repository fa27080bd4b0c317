// Package render turns a MeshOperator into the ordered manifest to apply,
// through the embedded Helm charts.
package render

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mesh.dev/mesh/internal/manifest"
	"mesh.dev/mesh/internal/spec"
)

// Labels every rendered object carries; install prunes and uninstalls by them.
const (
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelComponent = "install.mesh.io/component"
	LabelRevision  = "mesh.io/rev"
	PartOf         = "mesh"
)

// Component names. Gateways are named by GatewayComponent. Each name is also
// the value of the install.mesh.io/component label on the component's objects.
const (
	ComponentBase  = "base"
	ComponentPilot = "pilot"
)

// GatewayComponent names a gateway's component: "ingress-gateway.<name>" or "egress-gateway.<name>".
func GatewayComponent(typ, name string) string { return typ + "-gateway." + name }

// Manifest is a rendered mesh: its components in apply order (base, pilot, gateways).
type Manifest struct {
	Components []Component
}

// Component is one part of the mesh and its objects in apply order
// (CRDs and Namespace first, admission webhooks last).
type Component struct {
	Name    string
	Objects []*unstructured.Unstructured
}

// Objects returns every object of the manifest in apply order.
func (m *Manifest) Objects() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, c := range m.Components {
		out = append(out, c.Objects...)
	}
	return out
}

// Render renders every enabled component of op. It needs no cluster.
func Render(op *spec.MeshOperator) (*Manifest, error) {
	m := &Manifest{}
	for _, in := range Inputs(op) {
		objs, err := RenderChart(in.Chart, in.Values)
		if err != nil {
			return nil, fmt.Errorf("render component %s: %w", in.Component, err)
		}
		m.Components = append(m.Components, Component{Name: in.Component, Objects: objs})
	}
	return m, nil
}

// RenderChart renders one embedded chart with values and returns its objects in apply order.
func RenderChart(chartName string, values map[string]any) ([]*unstructured.Unstructured, error) {
	c, err := Chart(chartName)
	if err != nil {
		return nil, err
	}
	vals, err := chartutil.ToRenderValues(c, values, chartutil.ReleaseOptions{Name: "mesh", IsInstall: true}, nil)
	if err != nil {
		return nil, fmt.Errorf("chart %s values: %w", chartName, err)
	}
	files, err := engine.Render(c, vals)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", chartName, err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var objs []*unstructured.Unstructured
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		for _, d := range manifest.SplitDocuments([]byte(files[n])) {
			obj, err := parseCached(d.Text)
			if err != nil {
				return nil, fmt.Errorf("chart %s: %s:%d: %w", chartName, n, d.Line, err)
			}
			if obj != nil {
				objs = append(objs, obj)
			}
		}
	}
	manifest.Sort(objs)
	return objs, nil
}

// parsed caches decoded documents by their text: most of a manifest (the
// CRD schemas above all) renders to the same text every time, and decoding
// YAML is the costliest step of a render.
var parsed struct {
	sync.Mutex
	m map[string]*unstructured.Unstructured
}

const parsedLimit = 512

func parseCached(doc []byte) (*unstructured.Unstructured, error) {
	parsed.Lock()
	obj, ok := parsed.m[string(doc)]
	parsed.Unlock()
	if ok {
		if obj == nil {
			return nil, nil
		}
		return obj.DeepCopy(), nil
	}
	obj, err := manifest.ParseObject(doc)
	if err != nil {
		return nil, err
	}
	parsed.Lock()
	if parsed.m == nil || len(parsed.m) >= parsedLimit {
		parsed.m = map[string]*unstructured.Unstructured{}
	}
	parsed.m[string(doc)] = obj
	parsed.Unlock()
	if obj == nil {
		return nil, nil
	}
	return obj.DeepCopy(), nil
}
