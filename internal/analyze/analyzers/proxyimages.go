package analyzers

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/analyze"
)

// ProxyImages reports namespaces whose running pods have a proxy image
// other than the one the injector now puts in (IST0158): after the control
// plane is upgraded, pods keep the proxy they were started with until they
// are redeployed.
type ProxyImages struct{}

// Metadata describes the analyzer.
func (*ProxyImages) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "injection.ImageAnalyzer", Description: "Checks running pods have the proxy image the injector of their revision now injects",
		Codes: []*analyze.MessageType{analyze.PodsIstioProxyImageMismatchInNamespace}}
}

// injectorValues is the part of the injector's ConfigMap (data.values)
// this analyzer reads.
type injectorValues struct {
	ProxyImage string `json:"proxyImage"`
	Revision   string `json:"revision"`
}

// Analyze runs the checks.
func (*ProxyImages) Analyze(ctx *analyze.Context) {
	images := map[string]string{} // revision -> proxy image
	for _, r := range ctx.ByKind("ConfigMap") {
		cm, ok := r.Object.(*corev1.ConfigMap)
		if !ok || r.Namespace != ctx.Mesh.Root() {
			continue
		}
		var v injectorValues
		if err := yaml.Unmarshal([]byte(cm.Data["values"]), &v); err != nil || v.ProxyImage == "" {
			continue // not ours to judge: the injector reports its own configuration errors
		}
		rev := v.Revision
		if rev == "" {
			rev = strings.TrimPrefix(strings.TrimPrefix(r.Name, analyze.InjectorConfigMap), "-")
		}
		images[revisionOrDefault(rev)] = v.ProxyImage
	}
	if len(images) == 0 {
		return
	}
	type stale struct {
		pods []string
		seen map[string]bool // images found
		want map[string]bool
		at   *analyze.Resource
	}
	byNS := map[string]*stale{}
	var order []string
	for _, w := range ctx.Workloads() {
		if !w.IsPod() || systemNamespaces[w.Namespace] {
			continue // gateway pods there take their image from their chart, not the injector
		}
		want, ok := images[revisionOrDefault(w.Labels[RevisionLabel])]
		if !ok {
			continue // a revision whose injector is not in the snapshot
		}
		for _, c := range append(append([]corev1.Container(nil), w.Pod.Spec.InitContainers...), w.Pod.Spec.Containers...) { // a native sidecar is an init container
			if c.Name != meshProxyContainer || c.Image == want {
				continue
			}
			st := byNS[w.Namespace]
			if st == nil {
				st = &stale{seen: map[string]bool{}, want: map[string]bool{}, at: w.Resource}
				byNS[w.Namespace] = st
				order = append(order, w.Namespace)
			}
			st.pods = append(st.pods, w.Name)
			st.seen[c.Image], st.want[want] = true, true
		}
	}
	for _, ns := range order {
		st := byNS[ns]
		at := st.at
		for _, r := range ctx.ByKind("Namespace") {
			if r.Name == ns {
				at = r // reported on the namespace, as Istio does, when it is known
			}
		}
		sort.Strings(st.pods)
		ctx.Report(analyze.PodsIstioProxyImageMismatchInNamespace, at, "",
			"The Istio proxy images of the pods running in the namespace do not match the image defined in the injection configuration (pod names: [%s]). This often happens after upgrading the control plane and can be fixed by redeploying the pods: they run %s, the injector now injects %s",
			strings.Join(st.pods, " "), keys(st.seen), keys(st.want))
	}
}

// meshProxyContainer is the container the mesh's injector adds; Istio's
// istio-proxy containers come from Istio's injector, whose image mesh
// does not know.
const meshProxyContainer = "mesh-proxy"

func revisionOrDefault(r string) string {
	if r == "" {
		return "default"
	}
	return r
}

func keys(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
