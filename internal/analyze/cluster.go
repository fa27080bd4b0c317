package analyze

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/resource"
)

// clusterResources are the kinds read from a live cluster: every kind of
// pilot's table that analyze files under a kind of its own (model.Kinds),
// so a kind pilot reads is one a live analysis checks, then the kinds only
// analyze reads.
var clusterResources = append(pilotResources(), analyzeOnlyResources...)

// notListed are the kinds of pilot's table a live analysis does not ask
// the cluster for, and why.
var notListed = map[string]string{
	"Secret": "Secrets are not read from a cluster; the gateway certificate check judges only Secrets given as files",
}

// pilotResources are the resources of the kinds pilot reads that analyze
// checks, in the table's order.
func pilotResources() []schema.GroupVersionResource {
	var out []schema.GroupVersionResource
	for _, k := range model.Kinds {
		if k.AnalyzerKind == "" || notListed[k.AnalyzerKind] != "" {
			continue
		}
		out = append(out, k.GVK.GroupVersion().WithResource(k.Plural))
	}
	return out
}

// analyzeOnlyResources are the kinds analyze reads that pilot does not.
var analyzeOnlyResources = []schema.GroupVersionResource{
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "statefulsets"},
	{Group: "apps", Version: "v1", Resource: "daemonsets"},
	{Group: "batch", Version: "v1", Resource: "cronjobs"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"},
	// Kinds the mesh does not read are listed too, so that MSH0004 tells a
	// live cluster's users that they have no effect.
	{Group: "networking.istio.io", Version: "v1alpha3", Resource: "envoyfilters"},
	{Group: "networking.istio.io", Version: "v1", Resource: "workloadgroups"},
	{Group: "networking.istio.io", Version: "v1beta1", Resource: "proxyconfigs"},
	{Group: "extensions.istio.io", Version: "v1alpha1", Resource: "wasmplugins"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "tcproutes"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "tlsroutes"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "udproutes"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "listenersets"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "backendtlspolicies"},
	// Only the Gateway API's CRDs are kept (IST0156, IST0176); see keep.
	crdResource,
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// keep says whether a listed object is one analysis reads: of the CRDs,
// only the Gateway API's, without their schemas.
func keep(gvr schema.GroupVersionResource, obj map[string]any) bool {
	if gvr != crdResource {
		return true
	}
	spec, _ := obj["spec"].(map[string]any)
	if g, _ := spec["group"].(string); g != gatewayAPIGroup {
		return false
	}
	// The schemas are most of a CRD's size; only names and versions are read.
	versions, _ := spec["versions"].([]any)
	for _, v := range versions {
		if vm, ok := v.(map[string]any); ok {
			delete(vm, "schema")
		}
	}
	return true
}

// controlPlaneResources are read from the mesh's own namespace only: the
// injector's ConfigMap (IST0158), not every ConfigMap of the cluster.
var controlPlaneResources = []schema.GroupVersionResource{
	{Version: "v1", Resource: "configmaps"},
}

// Reachable reports whether the cluster answers within timeout.
func Reachable(cfg *rest.Config, timeout time.Duration) bool {
	c := rest.CopyConfig(cfg)
	c.Timeout = timeout
	dc, err := discovery.NewDiscoveryClientForConfig(c)
	if err != nil {
		return false
	}
	_, err = dc.ServerVersion()
	return err == nil
}

// LoadCluster lists every object analysis needs from the cluster, in all
// namespaces. Kinds whose API is not installed (no Istio CRDs yet) are
// skipped.
func LoadCluster(ctx context.Context, cfg *rest.Config) ([]*resource.Raw, error) {
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to cluster: %w", err)
	}
	var out []*resource.Raw
	type listing struct {
		gvr schema.GroupVersionResource
		ns  string // "" lists every namespace
	}
	var lists []listing
	for _, gvr := range clusterResources {
		lists = append(lists, listing{gvr: gvr})
	}
	for _, gvr := range controlPlaneResources {
		lists = append(lists, listing{gvr: gvr, ns: RootNamespace})
	}
	for _, l := range lists {
		gvr := l.gvr
		list, err := dc.Resource(gvr).Namespace(l.ns).List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			slog.Debug("API not served by the cluster, skipped", "resource", gvr.String())
			continue
		}
		if apierrors.IsForbidden(err) {
			slog.Warn("not allowed to list, skipped", "resource", gvr.String(), "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
		}
		for i := range list.Items {
			obj := list.Items[i].Object
			if !keep(gvr, obj) {
				continue
			}
			// Lists return items without apiVersion/kind on some servers.
			if obj["kind"] == nil {
				obj["kind"] = list.GetKind()[:len(list.GetKind())-len("List")]
				obj["apiVersion"] = gvr.GroupVersion().String()
			}
			out = append(out, &resource.Raw{Object: obj})
		}
	}
	return out, nil
}
