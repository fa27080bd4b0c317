package fallback

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var (
	peerAuthentications = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
	authzPolicies       = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}
	destinationRules    = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
)

// Policies are the security policies a veto reads, as the API server
// serves them. The agent lists them when a proxy goes down; mesh analyze
// builds them from the objects it analyses, so both decide alike.
type Policies struct {
	PeerAuthentications   []unstructured.Unstructured
	DestinationRules      []unstructured.Unstructured
	AuthorizationPolicies []unstructured.Unstructured
}

// Vetoes names the policies that forbid pod's fallback, "" when none does
// (docs/fallback.md, "Security veto"). A kind that is not installed vetoes
// nothing; any other error is returned, and the caller vetoes on it.
func Vetoes(ctx context.Context, dyn dynamic.Interface, root string, pod *corev1.Pod) (string, error) {
	if dyn == nil {
		return "", fmt.Errorf("no client for the security policies")
	}
	var p Policies
	var err error
	if p.PeerAuthentications, err = list(ctx, dyn, peerAuthentications, ""); err != nil {
		return "", err
	}
	if p.DestinationRules, err = list(ctx, dyn, destinationRules, ""); err != nil {
		return "", err
	}
	for _, ns := range uniq(root, pod.Namespace) {
		aps, err := list(ctx, dyn, authzPolicies, ns)
		if err != nil {
			return "", err
		}
		p.AuthorizationPolicies = append(p.AuthorizationPolicies, aps...)
	}
	return strings.Join(p.Veto(root, pod.Namespace, pod.Labels), "; "), nil
}

// Veto lists, sorted, the policies that forbid the fallback of a pod in
// namespace ns with labels, none when it may fall back. It is coarse on
// purpose, failing closed: a STRICT PeerAuthentication anywhere (this
// pod's ports, or a destination it may call, requires mTLS), an
// ISTIO_MUTUAL DestinationRule anywhere (a destination requires mTLS), an
// AuthorizationPolicy in the root or the pod's namespace that selects the
// pod (it would be bypassed).
func (p *Policies) Veto(root, ns string, labels map[string]string) []string {
	var why []string
	for _, pa := range p.PeerAuthentications {
		if strictIn(pa.Object) {
			why = append(why, fmt.Sprintf("PeerAuthentication %s/%s is STRICT", pa.GetNamespace(), pa.GetName()))
		}
	}
	for _, dr := range p.DestinationRules {
		if mutual(dr.Object["spec"]) {
			why = append(why, fmt.Sprintf("DestinationRule %s/%s requires ISTIO_MUTUAL", dr.GetNamespace(), dr.GetName()))
		}
	}
	for _, ap := range p.AuthorizationPolicies {
		if apNS := ap.GetNamespace(); apNS != ns && (root == "" || apNS != root) {
			continue
		}
		if selects(ap.Object, labels) {
			why = append(why, fmt.Sprintf("AuthorizationPolicy %s/%s selects the pod", ap.GetNamespace(), ap.GetName()))
		}
	}
	sort.Strings(why)
	return why
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
