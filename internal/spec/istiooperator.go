package spec

import (
	"fmt"
	"sort"
	"strings"
)

// istioProfiles maps Istio's profile names onto ours; the rest fall back to default.
var istioProfiles = map[string]string{"default": "default", "demo": "demo", "minimal": "minimal", "empty": "empty"}

// istioValues are the IstioOperator spec.values paths that mean the same here.
var istioValues = map[string]bool{
	"global.proxy.logLevel":          true,
	"global.proxy.resources":         true,
	"global.imagePullPolicy":         true,
	"global.logging.level":           true,
	"pilot.traceSampling":            true,
	"pilot.env":                      true,
	"pilot.podAnnotations":           true,
	"pilot.nodeSelector":             true,
	"pilot.replicaCount":             true,
	"pilot.autoscaleEnabled":         true,
	"pilot.autoscaleMin":             true,
	"pilot.autoscaleMax":             true,
	"pilot.resources":                true,
	"global.proxy.componentLogLevel": true,
}

// translateIstioOperator turns an install.istio.io/v1alpha1 IstioOperator
// document into a MeshOperator overlay, warning about every field that has
// no equivalent here instead of silently dropping it.
func translateIstioOperator(doc map[string]any) (map[string]any, []string, error) {
	var warns []string
	warn := func(format string, args ...any) { warns = append(warns, fmt.Sprintf(format, args...)) }
	in, _ := doc["spec"].(map[string]any)
	out := map[string]any{}
	result := map[string]any{"apiVersion": APIVersion, "kind": Kind, "spec": out}
	if md, ok := doc["metadata"].(map[string]any); ok {
		if name, ok := md["name"].(string); ok && name != "" {
			result["metadata"] = map[string]any{"name": name}
		}
	}
	for _, k := range sortedKeys(in) {
		v := in[k]
		switch k {
		case "profile":
			name, _ := v.(string)
			if mapped, ok := istioProfiles[name]; ok {
				out["profile"] = mapped
			} else {
				warn("IstioOperator profile %q has no equivalent; using %q", name, DefaultProfile)
				out["profile"] = DefaultProfile
			}
		case "hub", "tag", "revision", "namespace":
			out[k] = fmt.Sprint(v)
		case "meshConfig":
			if m, ok := v.(map[string]any); ok {
				out["meshConfig"] = deepCopy(m)
			}
		case "components":
			comps, err := translateComponents(v, warn)
			if err != nil {
				return nil, nil, err
			}
			out["components"] = comps
		case "values":
			vals := map[string]any{}
			flattenValues("", v, func(path string, x any) {
				if istioValues[path] || prefixAllowed(path) {
					setDotted(vals, path, x)
				} else {
					warn("IstioOperator spec.values.%s has no equivalent; ignored", path)
				}
			})
			if len(vals) > 0 {
				out["values"] = vals
			}
		default:
			warn("IstioOperator spec.%s has no equivalent; ignored", k)
		}
	}
	return result, warns, nil
}

// prefixAllowed accepts leaves under a supported map-valued setting (pilot.env.FOO).
func prefixAllowed(path string) bool {
	for p := range istioValues {
		if strings.HasPrefix(path, p+".") {
			return true
		}
	}
	return false
}

func translateComponents(v any, warn func(string, ...any)) (map[string]any, error) {
	in, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("spec.components: expected a map")
	}
	out := map[string]any{}
	for _, k := range sortedKeys(in) {
		switch k {
		case "base", "pilot":
			c, ok := in[k].(map[string]any)
			if !ok {
				continue
			}
			out[k] = translateComponent("spec.components."+k, c, warn)
		case "ingressGateways", "egressGateways":
			list, _ := in[k].([]any)
			var gws []any
			for i, e := range list {
				g, ok := e.(map[string]any)
				if !ok {
					continue
				}
				where := fmt.Sprintf("spec.components.%s[%d]", k, i)
				t := translateComponent(where, g, warn)
				for _, f := range []string{"name", "namespace", "label"} {
					if x, ok := g[f]; ok {
						t[f] = deepCopy(x)
					}
				}
				if name, _ := g["name"].(string); name != "" {
					// Istio's default gateway names map onto ours so overlays switch the same gateway.
					t["name"] = strings.Replace(name, "istio-", "mesh-", 1)
				}
				gws = append(gws, t)
			}
			out[k] = gws
		default:
			warn("IstioOperator spec.components.%s has no equivalent; ignored", k)
		}
	}
	return out, nil
}

func translateComponent(where string, c map[string]any, warn func(string, ...any)) map[string]any {
	out := map[string]any{}
	for _, k := range sortedKeys(c) {
		switch k {
		case "enabled":
			out["enabled"] = c[k]
		case "k8s":
			k8s, _ := c[k].(map[string]any)
			t := map[string]any{}
			for _, f := range sortedKeys(k8s) {
				switch f {
				case "replicaCount", "env", "nodeSelector", "podAnnotations", "resources":
					t[f] = deepCopy(k8s[f])
				case "hpaSpec":
					hpa, _ := k8s[f].(map[string]any)
					h := map[string]any{}
					for _, hf := range sortedKeys(hpa) {
						switch hf {
						case "minReplicas", "maxReplicas":
							h[hf] = hpa[hf]
						default:
							warn("IstioOperator %s.k8s.hpaSpec.%s has no equivalent; ignored", where, hf)
						}
					}
					t["hpaSpec"] = h
				case "service":
					svc, _ := k8s[f].(map[string]any)
					s := map[string]any{}
					for _, sf := range sortedKeys(svc) {
						switch sf {
						case "type":
							s["type"] = svc[sf]
						case "ports":
							var ports []any
							for _, p := range asList(svc[sf]) {
								pm, _ := p.(map[string]any)
								np := map[string]any{}
								for _, pf := range []string{"name", "port", "targetPort", "protocol"} {
									if x, ok := pm[pf]; ok {
										np[pf] = x
									}
								}
								ports = append(ports, np)
							}
							s["ports"] = ports
						default:
							warn("IstioOperator %s.k8s.service.%s has no equivalent; ignored", where, sf)
						}
					}
					t["service"] = s
				default:
					warn("IstioOperator %s.k8s.%s has no equivalent; ignored", where, f)
				}
			}
			out["k8s"] = t
		case "name", "namespace", "label":
		default:
			warn("IstioOperator %s.%s has no equivalent; ignored", where, k)
		}
	}
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// flattenValues calls fn for every leaf under v with its dotted path;
// maps that the supported list names whole are passed as one leaf.
func flattenValues(prefix string, v any, fn func(string, any)) {
	m, ok := v.(map[string]any)
	if !ok || istioValues[prefix] {
		if prefix != "" {
			fn(prefix, v)
		}
		return
	}
	for _, k := range sortedKeys(m) {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flattenValues(p, m[k], fn)
	}
}

func setDotted(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = deepCopy(v)
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
