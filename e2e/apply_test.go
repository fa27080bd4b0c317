package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// apply does what `kubectl apply --server-side -n ns -f -` does with a
// manifest stream: each document applied with the test's field manager.
func (e *env) apply(ns string, manifest []byte) {
	e.t.Helper()
	cfg := e.c.RESTConfig()
	dyn := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	r := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for i := 1; ; i++ {
		obj := &unstructured.Unstructured{}
		if err := r.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			e.t.Fatalf("document %d: %v", i, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			e.t.Fatalf("document %d (%s): %v", i, gvk, err)
		}
		ri := dyn.Resource(m.Resource)
		var client dynamic.ResourceInterface = ri
		if m.Scope.Name() == "namespace" && ns != "" {
			obj.SetNamespace(ns)
			client = ri.Namespace(ns)
		}
		if _, err := client.Apply(context.Background(), obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "mesh-e2e", Force: true}); err != nil {
			e.t.Fatalf("apply %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
	}
}
