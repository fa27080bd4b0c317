package telemetry

import (
	"fmt"
	"sort"

	meshconfig "istio.io/api/mesh/v1alpha1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
	telemetryv1 "istio.io/client-go/pkg/apis/telemetry/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Class is the kind of listener config is resolved for; it decides which
// Telemetry match modes apply.
type Class uint8

// The listener classes, as Istio tells them apart.
const (
	Inbound  Class = iota // a sidecar's inbound side: mode SERVER
	Outbound              // a sidecar's outbound side: mode CLIENT
	Gateway               // a gateway's listeners: mode CLIENT, as in Istio
)

func (c Class) matches(m telemetryapi.WorkloadMode) bool {
	switch m {
	case telemetryapi.WorkloadMode_CLIENT:
		return c != Inbound
	case telemetryapi.WorkloadMode_SERVER:
		return c == Inbound
	}
	return true // CLIENT_AND_SERVER, the default
}

// Workload is what Telemetry selection reads of a proxy.
type Workload struct {
	Namespace string
	Labels    map[string]string
}

// Problem is part of a Telemetry resource (or of the mesh config, with an
// empty Resource) that pilot cannot carry out; pilot logs it.
type Problem struct {
	Resource string // namespace/name; "" for the mesh config
	Field    string
	Message  string
}

func (p Problem) String() string {
	if p.Resource == "" {
		return "mesh config " + p.Field + ": " + p.Message
	}
	return "Telemetry " + p.Resource + " " + p.Field + ": " + p.Message
}

// Policy is the telemetry config of one snapshot: the mesh config and the
// Telemetry resources, indexed by namespace. It is immutable and safe for
// concurrent use.
type Policy struct {
	Mesh *meshconfig.MeshConfig
	root string
	byNS map[string][]*telemetryv1.Telemetry // oldest first
}

// New indexes the Telemetry resources of a snapshot. mc may be nil (Istio's
// defaults: no access logs, no tracing provider).
func New(mc *meshconfig.MeshConfig, rootNamespace string, tels []*telemetryv1.Telemetry) *Policy {
	if mc == nil {
		mc = &meshconfig.MeshConfig{}
	}
	p := &Policy{Mesh: mc, root: rootNamespace, byNS: map[string][]*telemetryv1.Telemetry{}}
	for _, t := range tels {
		p.byNS[t.Namespace] = append(p.byNS[t.Namespace], t)
	}
	for _, ts := range p.byNS {
		sort.Slice(ts, func(i, j int) bool { return olderFirst(ts[i], ts[j]) })
	}
	return p
}

func olderFirst(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.GetName() < b.GetName()
}

// applicable returns the Telemetry resources that apply to w, least
// specific first: the root namespace's mesh-wide one, the namespace's, and
// the one selecting the workload by labels. Where several compete at one
// level the oldest wins, as Istio resolves conflicts. Resources with
// targetRefs are left out (they attach to gateways and waypoints; see
// Problems).
func (p *Policy) applicable(w Workload) []*telemetryv1.Telemetry {
	var out []*telemetryv1.Telemetry
	pick := func(ns string, selected bool) {
		for _, t := range p.byNS[ns] {
			if targeted(t) {
				continue
			}
			sel := t.Spec.GetSelector().GetMatchLabels()
			if selected != (len(sel) > 0) {
				continue
			}
			if selected && !matches(sel, w.Labels) {
				continue
			}
			out = append(out, t)
			return
		}
	}
	pick(p.root, false)
	if w.Namespace != p.root {
		pick(w.Namespace, false)
	}
	pick(w.Namespace, true)
	return out
}

func targeted(t *telemetryv1.Telemetry) bool {
	return t.Spec.GetTargetRef() != nil || len(t.Spec.GetTargetRefs()) > 0
}

func matches(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if lbls[k] != v {
			return false
		}
	}
	return true
}

// Problems lists what pilot cannot carry out of the mesh config and the
// Telemetry resources, for its log.
func (p *Policy) Problems() []Problem {
	var out []Problem
	for i, pr := range p.Mesh.GetExtensionProviders() {
		switch z := pr.GetZipkin(); {
		case z != nil && (z.GetTimeout() != nil || len(z.GetHeaders()) > 0):
			out = append(out, Problem{Field: fmt.Sprintf("extensionProviders[%d] (%s).zipkin", i, pr.GetName()),
				Message: "timeout and headers are not carried out (Envoy's ZipkinConfig of this API version has no collector_service): spans are sent with a 5 s timeout and no extra headers"})
		case pr.GetEnvoyFileAccessLog() != nil, pr.GetOpentelemetry() != nil, z != nil, pr.GetPrometheus() != nil:
		case pr.GetEnvoyExtAuthzHttp() != nil, pr.GetEnvoyExtAuthzGrpc() != nil:
			// authorization providers are the security side's concern
		default:
			out = append(out, Problem{Field: fmt.Sprintf("extensionProviders[%d] (%s)", i, pr.GetName()),
				Message: "provider type not supported (supported: envoyFileAccessLog, opentelemetry, zipkin, prometheus); Telemetry naming it gets nothing from it"})
		}
	}
	nss := make([]string, 0, len(p.byNS))
	for ns := range p.byNS {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		for _, t := range p.byNS[ns] {
			id := t.Namespace + "/" + t.Name
			if targeted(t) {
				out = append(out, Problem{id, "spec.targetRefs", "not supported: the resource applies to no proxy (use spec.selector)"})
				continue
			}
			for i, al := range t.Spec.GetAccessLogging() {
				for j, pr := range al.GetProviders() {
					if msg := p.logProviderProblem(pr.GetName()); msg != "" {
						out = append(out, Problem{id, fmt.Sprintf("spec.accessLogging[%d].providers[%d]", i, j), msg})
					}
				}
				if e := al.GetFilter().GetExpression(); e != "" {
					if err := checkCEL(e); err != nil {
						out = append(out, Problem{id, fmt.Sprintf("spec.accessLogging[%d].filter.expression", i), err.Error() + "; the entry's providers log nothing"})
					}
				}
			}
			out = append(out, p.tracingProblems(id, t)...)
			out = append(out, p.metricsProblems(id, t)...)
		}
	}
	return out
}
