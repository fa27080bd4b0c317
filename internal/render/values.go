package render

import (
	"mesh.dev/mesh/internal/spec"
	"mesh.dev/mesh/manifests"
)

// Input is one chart rendering: which component, which chart, with what values.
type Input struct {
	// Component is the component's stable name (see Render).
	Component string
	// Chart is the embedded chart's name (manifests.Base, Pilot or Gateways).
	Chart string
	// Values are the chart values, as `helm template -f` would take them.
	Values map[string]any
}

// Inputs returns the chart renderings op asks for, in apply order. The
// values are spec.values with the structured fields (hub, tag, components'
// k8s settings, meshConfig) laid over them, so the structured API wins.
func Inputs(op *spec.MeshOperator) []Input {
	s := op.Spec
	derived := map[string]any{
		"global": map[string]any{
			"hub":       s.Hub,
			"tag":       s.Tag,
			"namespace": s.Namespace,
			"revision":  s.Revision,
		},
	}
	pilot := map[string]any{}
	if s.Components.Pilot != nil && s.Components.Pilot.K8s != nil {
		pilot = k8sValues(s.Components.Pilot.K8s)
	}
	pilot["gatewaySecretNamespaces"] = gatewaySecretNamespaces(op)
	derived["pilot"] = pilot
	if len(s.MeshConfig) > 0 {
		derived["meshConfig"] = s.MeshConfig
	}
	values := spec.Merge(mapOrEmpty(s.Values), derived).(map[string]any)

	var out []Input
	if s.Components.Base.IsEnabled() {
		out = append(out, Input{Component: ComponentBase, Chart: manifests.Base, Values: copyMap(values)})
	}
	if s.Components.Pilot.IsEnabled() {
		out = append(out, Input{Component: ComponentPilot, Chart: manifests.Pilot, Values: copyMap(values)})
	}
	for _, kind := range []struct {
		typ string
		gws []spec.GatewaySpec
	}{{"ingress", s.Components.IngressGateways}, {"egress", s.Components.EgressGateways}} {
		for _, g := range kind.gws {
			if !g.IsEnabled() {
				continue
			}
			gv := map[string]any{"name": g.Name, "type": kind.typ, "namespace": g.Namespace}
			if len(g.Label) > 0 {
				labels := map[string]any{}
				for k, v := range g.Label {
					labels[k] = v
				}
				gv["labels"] = labels
			}
			if g.K8s != nil {
				gv = spec.Merge(gv, k8sValues(g.K8s)).(map[string]any)
			}
			vals := copyMap(values)
			vals["gateway"] = gv
			out = append(out, Input{Component: GatewayComponent(kind.typ, g.Name), Chart: manifests.Gateways, Values: vals})
		}
	}
	return out
}

// gatewaySecretNamespaces is the list of namespaces pilot reads gateway
// Secrets in, as the charts render it (its flag, a Role in each): pilot's
// own, each enabled gateway component's, then those values.pilot.
// gatewaySecretNamespaces lists; ["*"] alone when that list says "*".
func gatewaySecretNamespaces(op *spec.MeshOperator) []any {
	s := op.Spec
	var listed []any
	if pilot, ok := s.Values["pilot"].(map[string]any); ok {
		listed, _ = pilot["gatewaySecretNamespaces"].([]any)
	}
	for _, ns := range listed {
		if ns == "*" {
			return []any{"*"}
		}
	}
	out := []any{s.Namespace}
	seen := map[any]bool{s.Namespace: true}
	add := func(ns any) {
		if ns != "" && !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	for _, gws := range [][]spec.GatewaySpec{s.Components.IngressGateways, s.Components.EgressGateways} {
		for _, g := range gws {
			if g.IsEnabled() {
				add(g.Namespace)
			}
		}
	}
	for _, ns := range listed {
		add(ns)
	}
	return out
}

// k8sValues turns a KubernetesSpec into the chart values that carry it.
func k8sValues(k *spec.KubernetesSpec) map[string]any {
	v := map[string]any{}
	if k.ReplicaCount != nil {
		v["replicaCount"] = int64(*k.ReplicaCount)
	}
	if k.Resources != nil {
		r := map[string]any{}
		if len(k.Resources.Requests) > 0 {
			r["requests"] = stringMap(k.Resources.Requests)
		}
		if len(k.Resources.Limits) > 0 {
			r["limits"] = stringMap(k.Resources.Limits)
		}
		// Resources replace the chart's as a whole: a profile asking only
		// for requests must not inherit the chart's limits.
		v["resources"] = r
	}
	if h := k.HPASpec; h != nil {
		if h.MinReplicas != nil {
			v["autoscaleMin"] = int64(*h.MinReplicas)
		}
		if h.MaxReplicas != nil {
			v["autoscaleMax"] = int64(*h.MaxReplicas)
		}
		if h.TargetCPUUtilizationPercentage != nil {
			v["cpu"] = map[string]any{"targetAverageUtilization": int64(*h.TargetCPUUtilizationPercentage)}
		}
	}
	if len(k.Env) > 0 {
		env := map[string]any{}
		for _, e := range k.Env {
			env[e.Name] = e.Value
		}
		v["env"] = env
	}
	if len(k.NodeSelector) > 0 {
		v["nodeSelector"] = stringMap(k.NodeSelector)
	}
	if len(k.PodAnnotations) > 0 {
		v["podAnnotations"] = stringMap(k.PodAnnotations)
	}
	if k.Service != nil {
		svc := map[string]any{}
		if k.Service.Type != "" {
			svc["type"] = k.Service.Type
		}
		if len(k.Service.Ports) > 0 {
			ports := make([]any, 0, len(k.Service.Ports))
			for _, p := range k.Service.Ports {
				pm := map[string]any{"name": p.Name, "port": int64(p.Port)}
				if p.TargetPort != 0 {
					pm["targetPort"] = int64(p.TargetPort)
				}
				if p.Protocol != "" {
					pm["protocol"] = p.Protocol
				}
				ports = append(ports, pm)
			}
			svc["ports"] = ports
		}
		v["service"] = svc
	}
	return v
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mapOrEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func copyMap(m map[string]any) map[string]any {
	return spec.Merge(map[string]any{}, m).(map[string]any)
}
