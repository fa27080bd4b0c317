package analyze

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/crdschema"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// TestLiveCluster analyses a real API server: namespace labels, pods with
// and without their proxy, and files applied over the cluster's objects.
func TestLiveCluster(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc := kubernetes.NewForConfigOrDie(c.RESTConfig())
	mustCreate := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("create %s: %v", what, err)
		}
	}
	for name, labels := range map[string]map[string]string{
		"shop":   {"mesh-injection": "enabled"},
		"legacy": {"team": "old"},
		"opted":  {"mesh-injection": "disabled"},
	} {
		_, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
		mustCreate("namespace "+name, err)
	}
	pod := func(name string, containers ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "cart"}}}
		for _, c := range containers {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "example.invalid/" + c})
		}
		return p
	}
	_, err := kc.CoreV1().Pods("shop").Create(ctx, pod("cart-injected", "cart", "mesh-proxy"), metav1.CreateOptions{})
	mustCreate("pod", err)
	_, err = kc.CoreV1().Pods("shop").Create(ctx, pod("cart-bare", "cart"), metav1.CreateOptions{})
	mustCreate("pod", err)
	_, err = kc.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "cart"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "cart"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{})
	mustCreate("service", err)

	kubeconfig := c.KubeconfigPath()
	out, code := run(t, "", "--kubeconfig", kubeconfig, "-A", "-o", "json")
	for _, want := range []string{`"resource": "Namespace legacy"`, `"resource": "Pod cart-bare.shop"`} {
		if !strings.Contains(out, want) {
			t.Errorf("live analysis lacks %s:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"Namespace shop", "Namespace opted", "cart-injected", "kube-system"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("live analysis reports %s:\n%s", unwanted, out)
		}
	}
	if code != 0 {
		t.Errorf("only warnings and infos: exit %d, want 0", code)
	}

	// -n limits the report to one namespace.
	out, _ = run(t, "", "--kubeconfig", kubeconfig, "-n", "legacy")
	if !strings.Contains(out, "IST0102") || strings.Contains(out, "cart-bare") {
		t.Errorf("-n legacy:\n%s", out)
	}

	// Files are analysed as if applied over the cluster: the route resolves
	// to the cluster's Service, and a second one names a host that nothing has.
	dir := t.TempDir()
	vs := filepath.Join(dir, "vs.yaml")
	os.WriteFile(vs, []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: cart
  namespace: shop
spec:
  hosts: [cart]
  http:
  - route:
    - destination:
        host: cart
        port:
          number: 80
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: orders
  namespace: shop
spec:
  hosts: [orders]
  http:
  - route:
    - destination:
        host: orders
`), 0o644)
	out, code = run(t, "", "--kubeconfig", kubeconfig, "-n", "shop", vs)
	if code != cli.ExitFindings || !strings.Contains(out, `host not found: "orders"`) || strings.Contains(out, `host not found: "cart"`) {
		t.Errorf("files over the cluster: exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "vs.yaml:25") {
		t.Errorf("message does not point at the file and line of the field:\n%s", out)
	}
}

// TestLiveGatewayAPICRDs: a cluster whose HTTPRoute CRD is an old release
// serving v1beta1 only: live analysis lists the Gateway API's CRDs and
// says pilot reads no HTTPRoute there (IST0156), an Error.
func TestLiveGatewayAPICRDs(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "httproutes.gateway.networking.k8s.io",
			"annotations": map[string]any{"gateway.networking.k8s.io/bundle-version": "v0.6.2", "gateway.networking.k8s.io/channel": "standard",
				"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/1538"}},
		"spec": map[string]any{
			"group": "gateway.networking.k8s.io", "scope": "Namespaced",
			"names": map[string]any{"kind": "HTTPRoute", "plural": "httproutes", "singular": "httproute", "listKind": "HTTPRouteList"},
			"versions": []any{map[string]any{"name": "v1beta1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if _, err := dyn.Resource(crds).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() {
		dyn.Resource(crds).Delete(context.Background(), crd.GetName(), metav1.DeleteOptions{})
	})
	out, code := run(t, "", "--kubeconfig", c.KubeconfigPath(), "-A")
	if code != cli.ExitFindings || !strings.Contains(out, "IST0156") || !strings.Contains(out, "CustomResourceDefinition httproutes.gateway.networking.k8s.io") {
		t.Errorf("exit %d, want IST0156 about the HTTPRoute CRD:\n%s", code, out)
	}
}

// TestLiveMetaRoutes: a cluster serving mesh's MetaRoute CRD (as the base
// chart installs it) has its MetaRoutes checked by a live analysis, as
// pilot reads them: one naming a host nothing has is IST0101. Before, the
// live analysis did not list MetaRoutes at all.
func TestLiveMetaRoutes(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	kc := kubernetes.NewForConfigOrDie(c.RESTConfig())
	var crd *unstructured.Unstructured
	for _, d := range crdschema.All() {
		if d.Name() == "metaroutes.networking.mesh.io" {
			crd = &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
				"metadata": map[string]any{"name": d.Name()}, "spec": d.Object(),
			}}
		}
	}
	if crd == nil {
		t.Fatal("crdschema has no MetaRoute CRD")
	}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	if _, err := dyn.Resource(crds).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() { dyn.Resource(crds).Delete(context.Background(), crd.GetName(), metav1.DeleteOptions{}) })
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rpc"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	if _, err := kc.CoreV1().Services("rpc").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "calc"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "calc"}, Ports: []corev1.ServicePort{{Name: "tcp-thrift-calc", Port: 9090}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service: %v", err)
	}
	mr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.mesh.io/v1alpha1", "kind": "MetaRoute",
		"metadata": map[string]any{"name": "calc", "namespace": "rpc"},
		"spec": map[string]any{"hosts": []any{"calc"},
			"routes": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "multiplier"}}}}}},
	}}
	metaroutes := schema.GroupVersionResource{Group: "networking.mesh.io", Version: "v1alpha1", Resource: "metaroutes"}
	// The CRD is served once the API server has established it.
	var err error
	for {
		if _, err = dyn.Resource(metaroutes).Namespace("rpc").Create(ctx, mr, metav1.CreateOptions{}); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("create MetaRoute: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	out, code := run(t, "", "--kubeconfig", c.KubeconfigPath(), "-n", "rpc")
	if code != cli.ExitFindings || !strings.Contains(out, "IST0101") || !strings.Contains(out, "MetaRoute calc.rpc") ||
		!strings.Contains(out, `Referenced host not found: "multiplier"`) {
		t.Errorf("exit %d, want IST0101 on MetaRoute calc.rpc for host multiplier:\n%s", code, out)
	}
}

// TestLiveMeshConfigMap: a live analysis runs under the mesh config of the
// cluster's mesh ConfigMap, as pilot does, when no --meshConfigFile is
// given. With DNS capture and auto-allocation on there, a TCP
// ServiceEntry without addresses is not IST0134; a ConfigMap pilot cannot
// use is IST0106 on it, and the analysis falls back to the defaults; a
// --meshConfigFile wins over the ConfigMap.
func TestLiveMeshConfigMap(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc := kubernetes.NewForConfigOrDie(c.RESTConfig())
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mesh-system"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	allocating := "defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"\n    ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"\n"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: "mesh-system"}, Data: map[string]string{"mesh": allocating}}
	if _, err := kc.CoreV1().ConfigMaps("mesh-system").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ConfigMap: %v", err)
	}
	dir := t.TempDir()
	se := filepath.Join(dir, "se.yaml")
	os.WriteFile(se, []byte(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: db
  namespace: shop
spec:
  hosts: [db.example.com]
  ports:
  - {number: 5432, name: tcp, protocol: TCP}
  resolution: DNS
`), 0o644)
	out, code := run(t, "", "--kubeconfig", c.KubeconfigPath(), "-n", "shop", se)
	if code != 0 || strings.Contains(out, "IST0134") {
		t.Errorf("under the ConfigMap's auto-allocation: exit %d, want 0 and no IST0134:\n%s", code, out)
	}

	// The file wins over the cluster's ConfigMap.
	plain := filepath.Join(dir, "mesh.yaml")
	os.WriteFile(plain, []byte("rootNamespace: mesh-system\n"), 0o644)
	out, _ = run(t, "", "--kubeconfig", c.KubeconfigPath(), "-n", "shop", "--meshConfigFile", plain, se)
	if !strings.Contains(out, "IST0134") {
		t.Errorf("--meshConfigFile without auto-allocation: want IST0134:\n%s", out)
	}

	cm.Data["mesh"] = "defaultConfig:\n  proxyMetadata: {ISTIO_META_DNS_CAPTURE: \"true\", ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"}\nenableAutoMtls: maybe\n"
	if _, err := kc.CoreV1().ConfigMaps("mesh-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update ConfigMap: %v", err)
	}
	out, code = run(t, "", "--kubeconfig", c.KubeconfigPath(), "-A", se)
	if code != cli.ExitFindings || !strings.Contains(out, "IST0106") || !strings.Contains(out, "ConfigMap mesh.mesh-system") ||
		!strings.Contains(out, `"maybe"`) || !strings.Contains(out, "IST0134") {
		t.Errorf("a mesh ConfigMap pilot cannot use: exit %d, want IST0106 on it quoting the bad value, and IST0134 under the defaults:\n%s", code, out)
	}
}
