package pilot_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"mesh.dev/mesh/internal/crdschema"
	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/ca"
	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

const fixtures = "../../../shared/fixtures/bookinfo"

type env struct {
	t     *testing.T
	ctx   context.Context
	kube  kubernetes.Interface
	dyn   dynamic.Interface
	rm    *restmapper.DeferredDiscoveryRESTMapper
	cfg   *rest.Config
	pilot *pilot.Options
	// kubeconfig is the cluster's kubeconfig file, for pilot.
	kubeconfig string
}

// newEnv is an env on the package's sandbox cluster with the Istio CRDs
// installed, for a test that ends within timeout.
func newEnv(t *testing.T, timeout time.Duration) *env {
	t.Helper()
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	cfg := c.RESTConfig()
	kube := kubernetes.NewForConfigOrDie(cfg)
	e := &env{t: t, ctx: ctx, kube: kube, dyn: dynamic.NewForConfigOrDie(cfg), cfg: cfg, kubeconfig: c.KubeconfigPath(),
		rm: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery()))}
	e.installCRDs()
	return e
}

// createNamespaces creates each namespace, or keeps it if it is there.
func (e *env) createNamespaces(names ...string) {
	e.t.Helper()
	for _, ns := range names {
		if _, err := e.kube.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			e.t.Fatal(err)
		}
	}
}

// startPilot runs mesh-pilot in-process on the cluster with p (its
// kubeconfig and loopback listeners on free ports filled in) until the
// test ends, and returns once pilot says it is ready. A pilot that exits
// with an error fails the test.
func (e *env) startPilot(p *pilot.Options) *pilot.Options {
	e.t.Helper()
	if p.Kubeconfig == "" {
		p.Kubeconfig = e.kubeconfig
	}
	p.XDSAddr, p.SecureXDSAddr, p.DebugAddr, p.WebhookAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	p.ExtraHosts = []string{"127.0.0.1"}
	e.pilot = p
	ctx, stop := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	e.t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			e.t.Errorf("pilot exited with %v", err)
		}
	})
	dbg, err := p.Addr(e.ctx, "debug")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		resp, err := http.Get("http://" + dbg.String() + "/ready")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		e.t.Fatalf("pilot never became ready: %v", err)
	}
	return p
}

func (e *env) apply(path, ns string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := e.applyObj(obj, ns); err != nil {
			return err
		}
	}
}

func (e *env) applyObj(obj *unstructured.Unstructured, ns string) error {
	gvk := obj.GroupVersionKind()
	m, err := e.rm.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		e.rm.Reset()
		if m, err = e.rm.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return err
		}
	}
	obj.SetNamespace(ns)
	_, err = e.dyn.Resource(m.Resource).Namespace(ns).Apply(e.ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "pilot-test", Force: true})
	return err
}

func (e *env) applyYAML(doc, ns string) error {
	obj := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096).Decode(&obj.Object); err != nil {
		return err
	}
	return e.applyObj(obj, ns)
}

// installCRDs creates the Istio CRDs the base chart ships.
func (e *env) installCRDs() {
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range crdschema.All() {
		raw, err := json.Marshal(map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": crd.Name()}, "spec": crd.Object(),
		})
		if err != nil {
			e.t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(raw, &u.Object); err != nil {
			e.t.Fatal(err)
		}
		if _, err := e.dyn.Resource(gvr).Create(e.ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			e.t.Fatalf("create CRD %s: %v", crd.Name(), err)
		}
	}
	err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, gv := range []string{"networking.istio.io/v1", "security.istio.io/v1", "networking.mesh.io/v1alpha1"} {
			if _, err := e.kube.Discovery().ServerResourcesForGroupVersion(gv); err != nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		e.t.Fatalf("Istio CRDs never served: %v", err)
	}
	e.rm.Reset()
}

func TestPilotOnTheAPIServer(t *testing.T) {
	e := newEnv(t, 4*time.Minute)
	ctx, kube := e.ctx, e.kube
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "mesh-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo", Labels: map[string]string{inject.NamespaceLabel: "enabled"}}},
	} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kube.CoreV1().ConfigMaps("mesh-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh-sidecar-injector"},
		Data:       map[string]string{"values": "proxyImage: mesh/proxy:test\ndiscoveryAddress: mesh-pilot.mesh-system.svc:15012\n"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := e.startPilot(&pilot.Options{Namespace: "mesh-system"})
	wh, _ := p.Addr(ctx, "webhook")
	registerWebhooks(t, e, "https://"+wh.String())

	t.Run("injection", func(t *testing.T) { testInjection(t, e) })
	t.Run("fallback opt-in", func(t *testing.T) { testFallbackOptIn(t, e) })
	t.Run("discovery and routing", func(t *testing.T) { testDiscovery(t, e) })
	t.Run("validation", func(t *testing.T) { testValidation(t, e) })
	t.Run("MetaRoute", func(t *testing.T) { testMetaRoute(t, e) })
	t.Run("mTLS xDS", func(t *testing.T) { testSecureXDS(t, e) })
}

// testSecureXDS: on 15012 xDS needs a client certificate from the mesh CA,
// and a workload with one gets its config and its SDS secrets.
func testSecureXDS(t *testing.T, e *env) {
	addr, _ := e.pilot.Addr(e.ctx, "secure-xds")
	dial := func(certs []tls.Certificate) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: e.pilot.CA.RootPool(), ServerName: "mesh-pilot.mesh-system.svc", Certificates: certs,
		})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	node := podNode(t, e, "bookinfo", "ratings")
	wctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	anon := &pilottest.ADSClient{NodeID: node}
	err := anon.Start(wctx, dial(nil))
	if err == nil {
		err = anon.WaitFor(wctx, func(c *pilottest.ADSClient) bool { return c.Count(resourcev3.ClusterType) > 0 })
	}
	if err == nil || !strings.Contains(err.Error(), "client certificate") {
		t.Errorf("xDS without a client certificate on the mTLS port: %v, want refused", err)
	}
	pair, _, _, err := e.pilot.CA.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) {
		return e.pilot.CA.SignWorkload(pub, ca.SPIFFEID("bookinfo", "bookinfo-ratings"), time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A mesh certificate of another namespace does not get this
	// namespace's config (nor its secrets) by claiming its node id.
	other, _, _, err := e.pilot.CA.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) {
		return e.pilot.CA.SignWorkload(pub, ca.SPIFFEID("default", "default"), time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	intruder := &pilottest.ADSClient{NodeID: node}
	err = intruder.Start(wctx, dial([]tls.Certificate{other}))
	if err == nil {
		err = intruder.WaitFor(wctx, func(c *pilottest.ADSClient) bool { return c.Count(resourcev3.ClusterType) > 0 })
	}
	if err == nil || !strings.Contains(err.Error(), `certificate's identity is in namespace "default"`) {
		t.Errorf("namespace default's certificate asking for a bookinfo proxy's config: %v, want refused", err)
	}

	c := &pilottest.ADSClient{NodeID: node}
	if err := c.Start(wctx, dial([]tls.Certificate{pair})); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
		return c.Resource(resourcev3.ClusterType, "outbound|9080||details.bookinfo.svc.cluster.local") != nil
	}); err != nil {
		t.Fatalf("workload with a mesh certificate got no config over mTLS: %v", err)
	}
	res, err := e.pilot.Server.Resources(node)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Names(resourcev3.SecretType); len(got) != 2 || got[0] != "ROOTCA" || got[1] != "default" {
		t.Errorf("SDS secrets %v, want ROOTCA and default", got)
	}

	// On the plaintext port anyone can claim any node id: a proxy there
	// gets its config but never a workload certificate and key.
	plainAddr, _ := e.pilot.Addr(e.ctx, "xds")
	conn, err := grpc.NewClient(plainAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	impostor := podNode(t, e, "bookinfo", "details")
	pc := &pilottest.ADSClient{NodeID: impostor}
	if err := pc.Start(wctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := pc.WaitFor(wctx, func(c *pilottest.ADSClient) bool { return c.Count(resourcev3.ClusterType) > 0 }); err != nil {
		t.Fatalf("plaintext proxy got no config: %v", err)
	}
	res, err = e.pilot.Server.Resources(impostor)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Names(resourcev3.SecretType); len(got) != 0 {
		t.Errorf("a proxy on the plaintext port was sent secrets %v", got)
	}
}

// registerWebhooks points the API server at pilot's webhooks by URL.
func registerWebhooks(t *testing.T, e *env, base string) {
	none := admissionregv1.SideEffectClassNone
	fail := admissionregv1.Fail
	ca := e.pilot.CA.RootPEM()
	injectURL, validateURL := base+"/inject", base+"/validate"
	_, err := e.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(e.ctx, &admissionregv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh-sidecar-injector-test"},
		Webhooks: []admissionregv1.MutatingWebhook{{
			Name:                    "namespace.sidecar-injector.mesh.io",
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &injectURL, CABundle: ca},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{inject.NamespaceLabel: "enabled"}},
			ObjectSelector:          &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: inject.InjectLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}}}},
			Rules:                   []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create}, Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The configurations are cluster-wide and fail closed: left behind, they
	// would send the package's later tests to a pilot that has stopped.
	t.Cleanup(func() {
		_ = e.kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "mesh-sidecar-injector-test", metav1.DeleteOptions{})
	})
	_, err = e.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(e.ctx, &admissionregv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh-validator-test"},
		Webhooks: []admissionregv1.ValidatingWebhook{{
			Name:                    "validation.mesh.io",
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &validateURL, CABundle: ca},
			Rules:                   []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update}, Rule: admissionregv1.Rule{APIGroups: []string{"networking.istio.io", "security.istio.io", "networking.mesh.io"}, APIVersions: []string{"*"}, Resources: []string{"*"}}}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), "mesh-validator-test", metav1.DeleteOptions{})
	})
	// Sanity: pilot's webhook certificate verifies against the bundle given to the API server.
	pool := e.pilot.CA.RootPool()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("webhook TLS does not verify against the CA bundle: %v", err)
	}
	conn.Close()
}

func testInjection(t *testing.T, e *env) {
	if err := e.apply(filepath.Join(fixtures, "bookinfo.yaml"), "bookinfo"); err != nil {
		t.Fatal(err)
	}
	optOut := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy", Labels: map[string]string{inject.InjectLabel: "false"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "legacy:1"}}},
	}
	created, err := e.kube.CoreV1().Pods("bookinfo").Create(e.ctx, optOut, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(created.Spec.Containers) != 1 {
		t.Errorf("opted-out pod got %d containers", len(created.Spec.Containers))
	}
	var pods *corev1.PodList
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err = e.kube.CoreV1().Pods("bookinfo").List(ctx, metav1.ListOptions{LabelSelector: "app"})
		return err == nil && len(pods.Items) == 6, nil
	})
	if err != nil {
		t.Fatalf("bookinfo pods: %v", err)
	}
	for _, pod := range pods.Items {
		// The sandbox's API server is 1.29 or later: the proxy is a native sidecar after the capture.
		ic := pod.Spec.InitContainers
		if len(ic) < 2 || ic[0].Name != inject.InitContainer || ic[1].Name != inject.ProxyContainer ||
			ic[1].RestartPolicy == nil || *ic[1].RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("pod %s was not injected by the webhook with a native sidecar: init containers %+v", pod.Name, ic)
		}
		if pod.Labels[model.TLSModeLabel] != "istio" {
			t.Errorf("pod %s lacks the tlsMode label", pod.Name)
		}
	}
}

func podNode(t *testing.T, e *env, ns, app string) string {
	t.Helper()
	var id string
	err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := e.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil || len(pods.Items) == 0 || pods.Items[0].Status.PodIP == "" {
			return false, nil
		}
		p := pods.Items[0]
		id = model.NodeID(model.SidecarProxy, p.Status.PodIP, p.Name, p.Namespace)
		return true, nil
	})
	if err != nil {
		t.Fatalf("no running %s pod with an IP: %v", app, err)
	}
	return id
}

func endpointCount(c *pilottest.ADSClient, cluster string) int {
	a := c.Resource(resourcev3.EndpointType, cluster)
	if a == nil {
		return 0
	}
	var cla endpointv3.ClusterLoadAssignment
	if a.UnmarshalTo(&cla) != nil {
		return 0
	}
	n := 0
	for _, l := range cla.Endpoints {
		n += len(l.LbEndpoints)
	}
	return n
}

func testDiscovery(t *testing.T, e *env) {
	addr, _ := e.pilot.Addr(e.ctx, "xds")
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := &pilottest.ADSClient{NodeID: podNode(t, e, "bookinfo", "productpage")}
	if err := client.Start(e.ctx, conn); err != nil {
		t.Fatal(err)
	}
	reviews := "outbound|9080||reviews.bookinfo.svc.cluster.local"
	wctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	if err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
		return c.Resource(resourcev3.ClusterType, reviews) != nil && endpointCount(c, reviews) == 3
	}); err != nil {
		t.Fatalf("xDS client never got the reviews cluster with 3 endpoints (from Services, Pods and EndpointSlices): %v", err)
	}

	// Routing rules from the fixtures change the routes as they say.
	for _, f := range []string{"destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml"} {
		if err := e.apply(filepath.Join(fixtures, "networking", f), "bookinfo"); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
	if err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
		r := c.Resource(resourcev3.RouteType, "9080")
		return r != nil && strings.Contains(string(r.Value), "outbound|9080|v2|reviews.bookinfo.svc.cluster.local") &&
			strings.Contains(string(r.Value), "jason") && endpointCount(c, "outbound|9080|v3|reviews.bookinfo.svc.cluster.local") == 1
	}); err != nil {
		t.Fatalf("routes never sent jason to v2: %v", err)
	}
	if err := e.apply(filepath.Join(fixtures, "networking", "virtual-service-reviews-80-20.yaml"), "bookinfo"); err != nil {
		t.Fatal(err)
	}
	if err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
		r := c.Resource(resourcev3.RouteType, "9080")
		return r != nil && !strings.Contains(string(r.Value), "jason") && strings.Contains(string(r.Value), "outbound|9080|v1|reviews.bookinfo.svc.cluster.local")
	}); err != nil {
		t.Fatalf("the 80/20 rule never replaced the jason rule: %v", err)
	}

	// Scaling a deployment is an endpoint change.
	scale, err := e.kube.AppsV1().Deployments("bookinfo").GetScale(e.ctx, "reviews-v3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 2
	if _, err := e.kube.AppsV1().Deployments("bookinfo").UpdateScale(e.ctx, "reviews-v3", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
		return endpointCount(c, reviews) == 4 && endpointCount(c, "outbound|9080|v3|reviews.bookinfo.svc.cluster.local") == 2
	}); err != nil {
		t.Fatalf("the new reviews-v3 pod never reached the client: %v", err)
	}
}

func testValidation(t *testing.T, e *env) {
	bad := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: -5
`
	err := e.applyYAML(bad, "bookinfo")
	if err == nil {
		t.Fatal("a VirtualService with negative weight was accepted")
	}
	if !strings.Contains(err.Error(), "validation.mesh.io") || !strings.Contains(err.Error(), "spec.http[0].route[0].weight") {
		t.Errorf("rejection does not come from the webhook or does not name the field: %v", err)
	}
	good := strings.Replace(bad, "weight: -5", "weight: 100", 1)
	if err := e.applyYAML(good, "bookinfo"); err != nil {
		t.Errorf("a valid VirtualService was rejected: %v", err)
	}
	// A rollout pilot would hold the change for is refused when applied.
	staged := strings.Replace(good, "metadata: {name: broken}", `metadata: {name: broken, annotations: {rollout.mesh.io/stages: "10,50", rollout.mesh.io/interval: 60s}}`, 1)
	err = e.applyYAML(staged, "bookinfo")
	if err == nil || !strings.Contains(err.Error(), "validation.mesh.io") || !strings.Contains(err.Error(), "metadata.annotations[rollout.mesh.io/stages]") {
		t.Errorf("stages not ending at 100: %v; want the webhook's refusal naming the annotation", err)
	}
}

// testMetaRoute: a MetaRoute created through the API server (past the
// webhook, which refuses a bad one naming the field) becomes the
// generic_proxy route table of a Thrift port (named tcp-thrift-*) on a
// client sidecar's outbound listener, over pilot's own ADS.
func testMetaRoute(t *testing.T, e *env) {
	bad := `apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: calc}
spec:
  hosts: [calc]
  routes:
  - match: {attributes: {method: {exact: bye}}}
    route: [{destination: {host: calc, subset: v2}}]
    retries: {attempts: 2, retryOn: 5xx}
`
	err := e.applyYAML(bad, "bookinfo")
	if err == nil || !strings.Contains(err.Error(), "validation.mesh.io") || !strings.Contains(err.Error(), "spec.routes[0].retries.retryOn") {
		t.Fatalf("a MetaRoute retrying on 5xx: %v; want the webhook to refuse it naming spec.routes[0].retries.retryOn", err)
	}
	svc := `apiVersion: v1
kind: Service
metadata: {name: calc}
spec:
  selector: {app: calc}
  ports: [{name: tcp-thrift-calc, port: 9090}]
`
	if err := e.applyYAML(svc, "bookinfo"); err != nil {
		t.Fatal(err)
	}
	if err := e.applyYAML(strings.Replace(bad, "retryOn: 5xx", "retryOn: connect-failure", 1), "bookinfo"); err != nil {
		t.Fatalf("a valid MetaRoute was refused: %v", err)
	}
	addr, _ := e.pilot.Addr(e.ctx, "xds")
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := &pilottest.ADSClient{NodeID: podNode(t, e, "bookinfo", "productpage")}
	if err := client.Start(e.ctx, conn); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(e.ctx, 2*time.Minute)
	defer cancel()
	var last string
	if err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
		l := c.Resource(resourcev3.ListenerType, "0.0.0.0_9090")
		if l == nil {
			return false
		}
		last = string(l.Value)
		return strings.Contains(last, "generic_proxy") && strings.Contains(last, "bye") &&
			strings.Contains(last, "outbound|9090|v2|calc.bookinfo.svc.cluster.local")
	}); err != nil {
		t.Fatalf("the Thrift port's listener never routed bye to calc's subset v2 (last: %q): %v", last, err)
	}

	// exportTo: the webhook refuses a bad entry naming it; the API server
	// keeps a good one (the CRD schema has the field, so it is not
	// pruned), and pilot honours it: exported only to another namespace,
	// the MetaRoute no longer routes bookinfo's requests.
	valid := strings.Replace(bad, "retryOn: 5xx", "retryOn: connect-failure", 1)
	withExport := func(to string) string {
		return strings.Replace(valid, "  hosts: [calc]\n", "  hosts: [calc]\n  exportTo: "+to+"\n", 1)
	}
	if err := e.applyYAML(withExport("[Elsewhere]"), "bookinfo"); err == nil || !strings.Contains(err.Error(), "validation.mesh.io") || !strings.Contains(err.Error(), "spec.exportTo[0]") {
		t.Fatalf("a MetaRoute exported to namespace \"Elsewhere\": %v; want the webhook to refuse it naming spec.exportTo[0]", err)
	}
	if err := e.applyYAML(withExport("[elsewhere]"), "bookinfo"); err != nil {
		t.Fatalf("a MetaRoute exported to namespace elsewhere was refused: %v", err)
	}
	mrs := schema.GroupVersionResource{Group: "networking.mesh.io", Version: "v1alpha1", Resource: "metaroutes"}
	got, err := e.dyn.Resource(mrs).Namespace("bookinfo").Get(e.ctx, "calc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if exp, _, _ := unstructured.NestedStringSlice(got.Object, "spec", "exportTo"); !slices.Equal(exp, []string{"elsewhere"}) {
		t.Fatalf("the API server holds spec.exportTo %q, want [elsewhere] (pruned by the CRD schema?)", exp)
	}
	if err := client.WaitFor(wctx, func(c *pilottest.ADSClient) bool {
		l := c.Resource(resourcev3.ListenerType, "0.0.0.0_9090")
		if l == nil {
			return false
		}
		last = string(l.Value)
		return strings.Contains(last, "generic_proxy") && !strings.Contains(last, "bye") &&
			strings.Contains(last, "outbound|9090||calc.bookinfo.svc.cluster.local")
	}); err != nil {
		t.Fatalf("exported to namespace elsewhere, the MetaRoute still routes bookinfo's requests (last: %q): %v", last, err)
	}
}
