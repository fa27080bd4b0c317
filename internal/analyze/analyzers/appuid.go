package analyzers

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/analyze"
)

// ProxyUID is the user ID the proxy runs as; the traffic redirection
// leaves this user's traffic alone so the proxy's own is not looped back.
const ProxyUID = 1337

// ApplicationUID reports application containers (or pods) that run as
// the proxy's user ID (IST0144): their traffic bypasses the proxy, so
// neither mTLS nor policy applies to it.
type ApplicationUID struct{}

// Metadata describes the analyzer.
func (*ApplicationUID) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "deployment.ApplicationUIDAnalyzer", Description: "Checks application containers do not run as the proxy's user ID 1337",
		Codes: []*analyze.MessageType{analyze.InvalidApplicationUID}}
}

// Analyze runs the checks.
func (*ApplicationUID) Analyze(ctx *analyze.Context) {
	for _, w := range ctx.Workloads() {
		if systemNamespaces[w.Namespace] {
			continue
		}
		var spec *corev1.PodSpec
		prefix := "spec.template.spec"
		if w.IsPod() {
			spec, prefix = &w.Pod.Spec, "spec"
		} else {
			spec = &w.Template.Spec
		}
		if sc := spec.SecurityContext; sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == ProxyUID {
			ctx.Report(analyze.InvalidApplicationUID, w.Resource, prefix+".securityContext.runAsUser",
				"User ID (UID) %d is reserved for the sidecar proxy: the pod's containers run as it, so their traffic bypasses the proxy; pick another runAsUser", ProxyUID)
		}
		for i, c := range spec.Containers {
			if HasProxy([]string{c.Name}) {
				continue
			}
			if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == ProxyUID {
				ctx.Report(analyze.InvalidApplicationUID, w.Resource, fmt.Sprintf("%s.containers[%d].securityContext.runAsUser", prefix, i),
					"User ID (UID) %d is reserved for the sidecar proxy: container %q runs as it, so its traffic bypasses the proxy; pick another runAsUser", ProxyUID, c.Name)
			}
		}
	}
}
