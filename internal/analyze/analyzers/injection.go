package analyzers

import (
	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/analyze"
)

// Injection reports namespaces not labelled for proxy injection (IST0102)
// and pods that should have a proxy but have none (IST0103).
type Injection struct{}

// Metadata describes the analyzer.
func (*Injection) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "injection.Proxy", Description: "Checks namespace injection labels and that pods have their proxy",
		Codes: []*analyze.MessageType{analyze.NamespaceNotInjected, analyze.PodMissingProxy}}
}

// Labels and names that decide injection.
const (
	InjectionLabel      = "mesh-injection"
	IstioInjectionLabel = "istio-injection"
	RevisionLabel       = "mesh.io/rev"
	IstioRevisionLabel  = "istio.io/rev"
	PodInjectLabel      = "sidecar.mesh.io/inject"
	// PodStatusAnnotation records what the injector added to a pod.
	PodStatusAnnotation = "sidecar.mesh.io/status"
	IstioPodInject      = "sidecar.istio.io/inject"
)

// ProxyContainerNames are the container names of an injected proxy.
var ProxyContainerNames = []string{"istio-proxy", "mesh-proxy"}

// NamespaceInjected reports whether a namespace's labels turn injection on.
func NamespaceInjected(labels map[string]string) bool {
	if labels[InjectionLabel] == "enabled" || labels[IstioInjectionLabel] == "enabled" {
		return true
	}
	_, rev := labels[RevisionLabel]
	_, irev := labels[IstioRevisionLabel]
	return (rev || irev) && labels[InjectionLabel] != "disabled" && labels[IstioInjectionLabel] != "disabled"
}

// namespaceOptedOut reports a namespace whose injection label says
// anything but enabled: as for Istio, its owner chose, and IST0102 does
// not ask again.
func namespaceOptedOut(labels map[string]string) bool {
	for _, k := range []string{InjectionLabel, IstioInjectionLabel} {
		if v := labels[k]; v != "" && v != "enabled" {
			return true
		}
	}
	return false
}

// HasProxy reports whether a container list includes the proxy.
func HasProxy(containers []string) bool {
	for _, c := range containers {
		for _, p := range ProxyContainerNames {
			if c == p {
				return true
			}
		}
	}
	return false
}

// podInjectionChoice returns the pod's own opt-in or opt-out ("true",
// "false" or "").
func podInjectionChoice(w *analyze.Workload) string {
	for _, k := range []string{PodInjectLabel, IstioPodInject} {
		if v, ok := w.Labels[k]; ok {
			return v
		}
		if v, ok := w.Annotations[k]; ok {
			return v
		}
	}
	return ""
}

// Analyze runs the checks.
func (*Injection) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("Namespace") {
		ns, ok := r.Object.(*corev1.Namespace)
		if !ok || systemNamespaces[r.Name] || NamespaceInjected(ns.Labels) || namespaceOptedOut(ns.Labels) {
			continue
		}
		ctx.Report(analyze.NamespaceNotInjected, r, "metadata.labels",
			"The namespace is not enabled for Istio injection. Run 'kubectl label namespace %s %s=enabled' to enable it (or label it %s=<revision>), or 'kubectl label namespace %s %s=disabled' to explicitly mark it as not needing injection.", r.Name, InjectionLabel, RevisionLabel, r.Name, InjectionLabel)
	}
	for _, w := range ctx.Workloads() {
		if !w.IsPod() || systemNamespaces[w.Namespace] || w.Pod.Spec.HostNetwork {
			continue
		}
		choice := podInjectionChoice(w)
		nsInjected := false
		if ns := ctx.Namespace(w.Namespace); ns != nil {
			nsInjected = NamespaceInjected(ns.Labels)
		}
		want := choice == "true" || (nsInjected && choice != "false")
		if want && !HasProxy(w.Containers) {
			ctx.Report(analyze.PodMissingProxy, w.Resource, "spec.containers",
				"The pod %s is missing the proxy (container %q or %q). This can often be resolved by restarting or redeploying the workload: it probably started before injection was enabled", w.Name, ProxyContainerNames[1], ProxyContainerNames[0])
		}
	}
}
