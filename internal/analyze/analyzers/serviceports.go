package analyzers

import (
	"fmt"
	"sort"
	"strings"

	"mesh.dev/mesh/internal/analyze"
)

// ServicePorts reports workloads selected by several Services that disagree
// about a port: one port number with different protocols (IST0116), or one
// target port behind different service ports (IST0137).
type ServicePorts struct{}

// Metadata describes the analyzer.
func (*ServicePorts) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "deployment.MultiServicePorts", Description: "Checks Services selecting the same workload agree on ports",
		Codes: []*analyze.MessageType{analyze.DeploymentAssociatedToMultipleServices, analyze.DeploymentConflictingPorts}}
}

// Analyze runs the checks.
func (*ServicePorts) Analyze(ctx *analyze.Context) {
	for _, w := range ctx.Workloads() {
		if w.IsPod() || systemNamespaces[w.Namespace] {
			continue
		}
		svcs := ctx.ServicesFor(w)
		if len(svcs) < 2 {
			continue
		}
		protocols := map[int32]map[string][]string{} // port -> protocol -> services
		targets := map[string]map[int32][]string{}   // target port -> service port -> services
		for _, svc := range svcs {
			for _, p := range svc.Service.Spec.Ports {
				proto := string(p.Protocol)
				if proto == "" {
					proto = "TCP"
				}
				if app := PortProtocol(p); app != "" {
					proto += "/" + app
				}
				if protocols[p.Port] == nil {
					protocols[p.Port] = map[string][]string{}
				}
				protocols[p.Port][proto] = append(protocols[p.Port][proto], svc.Name)
				target := p.TargetPort.String()
				if p.TargetPort.IntValue() == 0 && p.TargetPort.StrVal == "" {
					target = fmt.Sprint(p.Port)
				}
				if targets[target] == nil {
					targets[target] = map[int32][]string{}
				}
				targets[target][p.Port] = append(targets[target][p.Port], svc.Name)
			}
		}
		for _, port := range sortedKeys(protocols) {
			if m := protocols[port]; len(m) > 1 {
				ctx.Report(analyze.DeploymentAssociatedToMultipleServices, w.Resource, "",
					"This deployment %s is associated with multiple services using port %d but different protocols: %s", w.Name, port, describeGroups(m))
			}
		}
		for _, target := range sortedKeys(targets) {
			if m := targets[target]; len(m) > 1 {
				ctx.Report(analyze.DeploymentConflictingPorts, w.Resource, "",
					"This deployment %s is associated with multiple services using targetPort %q but different ports: %s; use the same port number in every Service", w.Name, target, describeGroups(m))
			}
		}
	}
}

func describeGroups[K comparable](m map[K][]string) string {
	var parts []string
	for k, svcs := range m {
		parts = append(parts, fmt.Sprintf("%v (%s)", k, strings.Join(svcs, ", ")))
	}
	sort.Strings(parts)
	return strings.Join(parts, " vs ")
}

func sortedKeys[K int32 | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
