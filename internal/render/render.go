// Package render turns a MeshOperator into the ordered manifest to apply,
// through the embedded Helm charts.
package render

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
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
	files, err := renderFiles(c, values)
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

func renderFiles(c *chart.Chart, values map[string]any) (map[string]string, error) {
	return engine.Render(c, renderValues(c, values))
}

// renderValues builds what the templates see, as Helm's ToRenderValues
// does, but coalesces with coalesce below: Helm's own copies every value by
// reflection, which was the largest cost of a render after parsing.
func renderValues(c *chart.Chart, values map[string]any) chartutil.Values {
	return chartutil.Values{
		"Chart":        c.Metadata,
		"Capabilities": chartutil.DefaultCapabilities,
		"Release": map[string]any{
			"Name": "mesh", "Namespace": "", "IsUpgrade": false, "IsInstall": true,
			"Revision": 0, "Service": "Helm",
		},
		"Values": chartutil.Values(coalesce(c.Values, values)),
	}
}

// coalesce lays user values over chart defaults with Helm's rules: maps
// merge, anything else from the user replaces the default (lists included),
// and a user null deletes the key. Neither input is changed.
func coalesce(defaults, user map[string]any) map[string]any {
	out := make(map[string]any, len(defaults)+len(user))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range user {
		if v == nil {
			delete(out, k)
			continue
		}
		um, uok := v.(map[string]any)
		dm, dok := out[k].(map[string]any)
		if uok && dok {
			out[k] = coalesce(dm, um)
		} else {
			out[k] = v
		}
	}
	return out
}

// parsed caches decoded documents by their text: most of a manifest (the
// CRD schemas above all) renders to the same text every time, and decoding
// YAML is the costliest step of a render.
var parsed struct {
	sync.Mutex
	m    map[string]*unstructured.Unstructured
	seen map[string]bool
}

const parsedLimit = 512

func parseCached(doc []byte) (*unstructured.Unstructured, error) {
	key := string(doc)
	parsed.Lock()
	obj, cached := parsed.m[key]
	seen := parsed.seen[key]
	parsed.Unlock()
	if cached {
		if obj == nil {
			return nil, nil
		}
		return obj.DeepCopy(), nil
	}
	obj, err := manifest.ParseObject(doc)
	if err != nil || obj == nil {
		return obj, err
	}
	parsed.Lock()
	defer parsed.Unlock()
	if parsed.m == nil || len(parsed.m)+len(parsed.seen) >= parsedLimit {
		parsed.m = map[string]*unstructured.Unstructured{}
		parsed.seen = map[string]bool{}
	}
	if !seen {
		// A process that renders once (manifest generate) never pays for a
		// copy: documents are cached only when they come round again.
		parsed.seen[key] = true
		return obj, nil
	}
	parsed.m[key] = obj
	return obj.DeepCopy(), nil
}
