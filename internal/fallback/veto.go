package fallback

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

var (
	peerAuthentications = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
	authzPolicies       = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	destinationRules    = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
)

// Policies are the security policies a veto reads, as the API server
// serves them, and the Services and Pods that map the destinations they
// make require mTLS to addresses. The agent lists them when a proxy goes
// down; mesh analyze builds them from the objects it analyses, so both
// decide alike.
type Policies struct {
	PeerAuthentications   []unstructured.Unstructured
	DestinationRules      []unstructured.Unstructured
	AuthorizationPolicies []unstructured.Unstructured
	Services              []corev1.Service
	Pods                  []corev1.Pod
}

// Decision is what the agent does with a pod whose proxy is down.
type Decision struct {
	// Veto lists, sorted, the policies that forbid the pod's fallback as a
	// whole; none: it may fall back.
	Veto []string
	// Keep are the destination addresses whose new connections stay
	// captured while the pod is in fallback (redirected to the dead proxy:
	// refused), sorted: they require mTLS.
	Keep []netip.Addr
	// Kept lists, sorted, the policies that keep destinations captured and
	// what they name, whether or not an address of theirs is known yet.
	Kept []string
}

// Decide reads the policies for pod's fallback, from the API server.
// Services and Pods are listed only when a policy needs them. A kind that
// is not installed counts as none; any other error is returned, and the
// caller vetoes on it.
func Decide(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, root string, pod *corev1.Pod) (Decision, error) {
	if dyn == nil || kube == nil {
		return Decision{}, fmt.Errorf("no client for the security policies")
	}
	var p Policies
	var err error
	if p.PeerAuthentications, err = list(ctx, dyn, peerAuthentications, ""); err != nil {
		return Decision{}, err
	}
	if p.DestinationRules, err = list(ctx, dyn, destinationRules, ""); err != nil {
		return Decision{}, err
	}
	for _, ns := range uniq(root, pod.Namespace) {
		aps, err := list(ctx, dyn, authzPolicies, ns)
		if err != nil {
			return Decision{}, err
		}
		p.AuthorizationPolicies = append(p.AuthorizationPolicies, aps...)
	}
	if p.needsAddresses() {
		svcs, err := kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return Decision{}, fmt.Errorf("list services: %w", err)
		}
		pods, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return Decision{}, fmt.Errorf("list pods: %w", err)
		}
		p.Services, p.Pods = svcs.Items, pods.Items
	}
	return p.Decide(root, pod.Namespace, pod.Labels), nil
}

func (p *Policies) needsAddresses() bool {
	for _, pa := range p.PeerAuthentications {
		if strictIn(pa.Object) {
			return true
		}
	}
	for _, dr := range p.DestinationRules {
		if mutual(dr.Object["spec"]) {
			return true
		}
	}
	return false
}

// Veto lists, sorted, the policies that forbid the fallback of a pod in
// namespace ns with labels (Decide's Veto).
func (p *Policies) Veto(root, ns string, labels map[string]string) []string {
	return p.Decide(root, ns, labels).Veto
}

// Decide decides for a pod in namespace ns with labels (root is the mesh's
// root namespace), failing closed where it is coarse
// (docs/fallback.md, "Security veto"):
//
//   - a STRICT PeerAuthentication (its mode, or any port's) that applies
//     to the pod (mesh-wide from the root namespace, its namespace's, or
//     one whose selector matches it, a root-namespace selector counting in
//     every namespace) vetoes: the pod's own ports require mTLS;
//   - one that applies to other workloads keeps their pod addresses
//     captured, and the cluster IPs of the Services selecting any of them
//     (every Service of its namespace when it has no selector);
//   - an ISTIO_MUTUAL DestinationRule (traffic policy, port level or
//     subset) keeps its host's Services captured, cluster IPs and the
//     addresses of the pods they select; for a Service that selects the
//     pod it vetoes (its clients must speak mTLS to it); a host that is no Kubernetes
//     Service (a ServiceEntry's, or a wildcard outside *.svc.cluster.local)
//     has no addresses the agent can map, and vetoes;
//   - an AuthorizationPolicy in the root or the pod's namespace that
//     selects the pod vetoes: it would be bypassed.
func (p *Policies) Decide(root, ns string, labels map[string]string) Decision {
	var d Decision
	keep := map[netip.Addr]bool{}
	add := func(ip string) {
		if a, err := netip.ParseAddr(ip); err == nil {
			keep[a.Unmap()] = true
		}
	}
	addService := func(svc *corev1.Service) {
		for _, ip := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
			add(ip)
		}
		if len(svc.Spec.Selector) == 0 {
			return
		}
		for i := range p.Pods {
			if pod := &p.Pods[i]; pod.Namespace == svc.Namespace && matchLabels(svc.Spec.Selector, pod.Labels) {
				addPod(pod, add)
			}
		}
	}
	for _, pa := range p.PeerAuthentications {
		if !strictIn(pa.Object) {
			continue
		}
		name := fmt.Sprintf("PeerAuthentication %s/%s is STRICT", pa.GetNamespace(), pa.GetName())
		sel, hasSel, _ := unstructured.NestedStringMap(pa.Object, "spec", "selector", "matchLabels")
		paNS := pa.GetNamespace()
		inScope := func(podNS string) bool { return paNS == podNS || (root != "" && paNS == root && hasSel) }
		if (root != "" && paNS == root && !hasSel) || (inScope(ns) && matchLabels(sel, labels)) {
			d.Veto = append(d.Veto, name)
			continue
		}
		what := "namespace " + paNS
		if hasSel {
			what = "workloads " + labelString(sel) + " of namespace " + paNS
			if paNS == root {
				what = "workloads " + labelString(sel)
			}
		}
		d.Kept = append(d.Kept, name+" ("+what+")")
		var strictPods []*corev1.Pod
		for i := range p.Pods {
			if pod := &p.Pods[i]; inScope(pod.Namespace) && matchLabels(sel, pod.Labels) {
				strictPods = append(strictPods, pod)
				addPod(pod, add)
			}
		}
		for i := range p.Services {
			svc := &p.Services[i]
			if !inScope(svc.Namespace) {
				continue
			}
			selected := !hasSel
			for _, pod := range strictPods {
				selected = selected || (pod.Namespace == svc.Namespace && len(svc.Spec.Selector) > 0 && matchLabels(svc.Spec.Selector, pod.Labels))
			}
			if selected {
				for _, ip := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
					add(ip)
				}
			}
		}
	}
	for _, dr := range p.DestinationRules {
		if !mutual(dr.Object["spec"]) {
			continue
		}
		host, _, _ := unstructured.NestedString(dr.Object, "spec", "host")
		fqdn := resolveHost(host, dr.GetNamespace())
		name := fmt.Sprintf("DestinationRule %s/%s requires ISTIO_MUTUAL", dr.GetNamespace(), dr.GetName())
		if strings.HasPrefix(fqdn, "*") && !strings.HasSuffix(fqdn, ".svc."+DomainSuffix) {
			d.Veto = append(d.Veto, fmt.Sprintf("%s for %q, which the agent cannot map to addresses", name, host))
			continue
		}
		found, own := false, ""
		for i := range p.Services {
			svc := &p.Services[i]
			if hostMatches(fqdn, svc.Name+"."+svc.Namespace+".svc."+DomainSuffix) {
				found = true
				addService(svc)
				if svc.Namespace == ns && len(svc.Spec.Selector) > 0 && matchLabels(svc.Spec.Selector, labels) {
					own = svc.Namespace + "/" + svc.Name
				}
			}
		}
		if own != "" {
			// Its clients must speak mTLS to it, which only its proxy answers.
			d.Veto = append(d.Veto, fmt.Sprintf("%s for the pod's Service %s", name, own))
			continue
		}
		if !found && !strings.HasPrefix(fqdn, "*") {
			d.Veto = append(d.Veto, fmt.Sprintf("%s for %s, which is no Kubernetes Service the agent can map to addresses", name, fqdn))
			continue
		}
		d.Kept = append(d.Kept, name+" ("+fqdn+")")
	}
	for _, ap := range p.AuthorizationPolicies {
		if apNS := ap.GetNamespace(); apNS != ns && (root == "" || apNS != root) {
			continue
		}
		if selects(ap.Object, labels) {
			d.Veto = append(d.Veto, fmt.Sprintf("AuthorizationPolicy %s/%s selects the pod", ap.GetNamespace(), ap.GetName()))
		}
	}
	sort.Strings(d.Veto)
	sort.Strings(d.Kept)
	if len(d.Veto) > 0 {
		return Decision{Veto: d.Veto}
	}
	for a := range keep {
		d.Keep = append(d.Keep, a)
	}
	sort.Slice(d.Keep, func(i, j int) bool { return d.Keep[i].Less(d.Keep[j]) })
	return d
}

// DomainSuffix is the cluster DNS domain short host names expand into.
const DomainSuffix = "cluster.local"

// resolveHost expands a DestinationRule's host as pilot does: "reviews"
// in namespace ns is reviews.ns.svc.cluster.local, "reviews.other" and
// "reviews.other.svc" are completed likewise.
func resolveHost(host, ns string) string {
	if strings.HasPrefix(host, "*") {
		return host
	}
	switch strings.Count(host, ".") {
	case 0:
		return host + "." + ns + ".svc." + DomainSuffix
	case 1:
		if !strings.HasSuffix(host, "."+DomainSuffix) {
			return host + ".svc." + DomainSuffix
		}
	case 2:
		if strings.HasSuffix(host, ".svc") {
			return host + "." + DomainSuffix
		}
	}
	return host
}

func hostMatches(pattern, host string) bool {
	if pattern == "*" {
		return true
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix)
	}
	return pattern == host
}

// addPod adds a pod's addresses while it may hold one (not finished).
func addPod(pod *corev1.Pod, add func(string)) {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return
	}
	add(pod.Status.PodIP)
	for _, ip := range pod.Status.PodIPs {
		add(ip.IP)
	}
}

func matchLabels(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func labelString(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func uniq(a, b string) []string {
	if a == "" || a == b {
		return []string{b}
	}
	return []string{a, b}
}

func list(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns string) ([]unstructured.Unstructured, error) {
	l, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil // the kind is not installed
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", gvr.Resource, err)
	}
	return l.Items, nil
}

// strictIn reports whether a PeerAuthentication makes any port STRICT.
func strictIn(obj map[string]any) bool {
	if m, _, _ := unstructured.NestedString(obj, "spec", "mtls", "mode"); m == "STRICT" {
		return true
	}
	ports, _, _ := unstructured.NestedMap(obj, "spec", "portLevelMtls")
	for _, p := range ports {
		if pm, ok := p.(map[string]any); ok && pm["mode"] == "STRICT" {
			return true
		}
	}
	return false
}

// mutual reports whether any tls block under v has mode ISTIO_MUTUAL.
func mutual(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		if tls, ok := t["tls"].(map[string]any); ok && tls["mode"] == "ISTIO_MUTUAL" {
			return true
		}
		for _, c := range t {
			if mutual(c) {
				return true
			}
		}
	case []any:
		for _, c := range t {
			if mutual(c) {
				return true
			}
		}
	}
	return false
}

// selects reports whether an AuthorizationPolicy applies to pod: no
// selector (the whole namespace, or the mesh from the root namespace), a
// selector its labels match, or targetRef(s), counted as selecting.
func selects(obj map[string]any, labels map[string]string) bool {
	spec, _ := obj["spec"].(map[string]any)
	if _, ok := spec["targetRef"]; ok {
		return true
	}
	if _, ok := spec["targetRefs"]; ok {
		return true
	}
	ml, _, _ := unstructured.NestedStringMap(obj, "spec", "selector", "matchLabels")
	for k, v := range ml {
		if labels[k] != v {
			return false
		}
	}
	return true
}
