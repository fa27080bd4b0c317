package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// bookinfoPath finds Istio's Bookinfo sample in the shared fixtures beside the repository.
func bookinfoPath(t *testing.T) string {
	t.Helper()
	root, err := sandbox.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "..", "shared", "fixtures", "bookinfo", "bookinfo.yaml")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Bookinfo fixture: %v (expected ../shared/fixtures/bookinfo/bookinfo.yaml next to the repository)", err)
	}
	return p
}

// applyFile server-side applies every object of a multi-document YAML file
// into ns, like `kubectl apply --server-side -n ns -f file`.
func applyFile(ctx context.Context, t *testing.T, path, ns string) []*unstructured.Unstructured {
	t.Helper()
	c := sandboxtest.Cluster(t)
	cfg := c.RESTConfig()
	dyn := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kubernetes.NewForConfigOrDie(cfg).Discovery()))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode %s: %v", path, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk, obj.GetName(), err)
		}
		obj.SetNamespace(ns)
		_, err = dyn.Resource(m.Resource).Namespace(ns).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "sandbox-test", Force: true})
		if err != nil {
			t.Fatalf("apply %s %s: %v", gvk.Kind, obj.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs
}

func TestBookinfoBecomesAvailableWithEndpoints(t *testing.T) {
	admin := adminClient(t)
	ns := createNamespace(t, admin, "bookinfo-")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	objs := applyFile(ctx, t, bookinfoPath(t), ns)

	var services, deployments []string
	for _, o := range objs {
		switch o.GetKind() {
		case "Service":
			services = append(services, o.GetName())
		case "Deployment":
			deployments = append(deployments, o.GetName())
		}
	}
	if len(services) == 0 || len(deployments) == 0 {
		t.Fatalf("fixture gave %d services and %d deployments; expected Bookinfo's", len(services), len(deployments))
	}

	var notYet string
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		list, err := admin.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		notYet = ""
		for _, d := range list.Items {
			if !deploymentAvailable(d) {
				notYet += fmt.Sprintf(" %s(ready %d/%d)", d.Name, d.Status.ReadyReplicas, ptrOr(d.Spec.Replicas, 1))
			}
		}
		return len(list.Items) == len(deployments) && notYet == "", nil
	})
	if err != nil {
		t.Fatalf("deployments not Available: %v; waiting on:%s\n%s", err, notYet, podSummary(ctx, admin, ns))
	}

	podCIDR := netip.MustParsePrefix(sandbox.PodCIDR)
	for _, name := range services {
		svc, err := admin.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, p := range pods.Items {
			if p.Status.PodIP == "" {
				t.Fatalf("pod %s has no IP although its deployment is Available", p.Name)
			}
			ip := netip.MustParseAddr(p.Status.PodIP)
			if !podCIDR.Contains(ip) {
				t.Errorf("pod %s has IP %s outside %s", p.Name, ip, podCIDR)
			}
			want = append(want, p.Status.PodIP)
		}
		slices.Sort(want)
		var got []string
		err = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			got, err = readyEndpointIPs(ctx, admin, ns, name)
			return slices.Equal(got, want), err
		})
		if err != nil {
			t.Errorf("service %s: EndpointSlices list %v, want the ready pod IPs %v (%v)", name, got, want, err)
			continue
		}
		t.Logf("service %s: endpoints %v", name, got)
	}
}

func readyEndpointIPs(ctx context.Context, cs kubernetes.Interface, ns, service string) ([]string, error) {
	slicesList, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, s := range slicesList.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ips = append(ips, e.Addresses...)
			}
		}
	}
	slices.Sort(ips)
	return ips, nil
}

func deploymentAvailable(d appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation || d.Status.ReadyReplicas != ptrOr(d.Spec.Replicas, 1) {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podSummary(ctx context.Context, cs kubernetes.Interface, ns string) string {
	pods, err := cs.CoreV1().Pods(ns).List(context.WithoutCancel(ctx), metav1.ListOptions{})
	if err != nil {
		return "list pods: " + err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "  pod %s: phase=%s node=%q ip=%q\n", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP)
	}
	return b.String()
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
