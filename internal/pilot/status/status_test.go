package status_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	meshnet "mesh.dev/mesh/internal/api/networking/v1alpha1"
	"mesh.dev/mesh/internal/crdschema"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/status"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

func installCRDs(t *testing.T, ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range crdschema.All() {
		raw, err := json.Marshal(map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": crd.Name()}, "spec": crd.Object(),
		})
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(raw, &u.Object); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(gvr).Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create CRD %s: %v", crd.Name(), err)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		for _, gv := range []string{"networking.istio.io/v1", "security.istio.io/v1", meshnet.SchemeGroupVersion.String()} {
			if _, err := kube.Discovery().ServerResourcesForGroupVersion(gv); err != nil {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("Istio CRDs never served: %v", err)
	}
}

// replica is one pilot's watcher feeding its status writer.
func replica(t *testing.T, ctx context.Context, kube kubernetes.Interface, istio istioclient.Interface, dyn dynamic.Interface, id string) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	w := &status.Writer{Istio: istio, Dynamic: dyn, Kube: kube, Namespace: "mesh-system", Identity: id,
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond}
	watcher := &model.Watcher{Kube: kube, Istio: istio, Dynamic: dyn, RootNamespace: "mesh-system",
		OnSnapshot: func(s *model.Snapshot, _ model.Change) { w.Offer(s) }}
	done := make(chan struct{}, 2)
	go func() { _ = watcher.Run(ctx); done <- struct{}{} }()
	go func() { _ = w.Run(ctx); done <- struct{}{} }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// condition returns pilot's condition and whether the MSH0003 validation
// message is there.
func condition(ap *securityv1.AuthorizationPolicy) (string, bool) {
	msg := ""
	for _, c := range ap.Status.Conditions {
		if c.GetType() == status.ConditionType {
			msg = c.GetStatus() + " " + c.GetMessage()
		}
	}
	has := false
	for _, m := range ap.Status.ValidationMessages {
		if m.GetType().GetCode() == status.MessageCode {
			has = true
		}
	}
	return msg, has
}

// TestStatusWrittenAndCleared runs two pilot replicas' status writers on
// the sandbox API server: the leader writes, on an AuthorizationPolicy
// whose rule uses a condition key the mesh cannot translate, a validation message and a condition
// naming the field path; fixing the policy clears both; when the leader
// goes, the other replica takes the Lease and writes.
func TestStatusWrittenAndCleared(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	istio := istioclient.NewForConfigOrDie(c.RESTConfig())
	installCRDs(t, ctx, kube, dynamic.NewForConfigOrDie(c.RESTConfig()))
	for _, ns := range []string{"mesh-system", "shop"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	aps := istio.SecurityV1().AuthorizationPolicies("shop")
	// An experimental Envoy attribute: pilot does not translate it, so the
	// ALLOW rule allows nobody and the status says which field.
	badRule := &securityapi.Rule{When: []*securityapi.Condition{{Key: "experimental.envoy.filters.network.x[y]", Values: []string{"v"}}}}
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "jwt-only"}}
	ap.Spec.Rules = []*securityapi.Rule{badRule}
	if _, err := aps.Create(ctx, ap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	stopA := replica(t, ctx, kube, istio, nil, "pilot-a")
	waitLeader(t, ctx, kube, "pilot-a")
	replica(t, ctx, kube, istio, nil, "pilot-b")

	waitFor(t, ctx, "status written", func() (bool, string) {
		got, err := aps.Get(ctx, "jwt-only", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond, msg := condition(got)
		return msg && strings.HasPrefix(cond, "False ") && strings.Contains(cond, "spec.rules[0].when[0].key") &&
			got.Status.ObservedGeneration == got.Generation, cond
	})

	// Fixed: the rule names what the mesh enforces; pilot's parts go.
	fix := func(rule *securityapi.Rule) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			got, err := aps.Get(ctx, "jwt-only", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			got.Spec.Rules = []*securityapi.Rule{rule}
			_, err = aps.Update(ctx, got, metav1.UpdateOptions{})
			return err == nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	fix(&securityapi.Rule{From: []*securityapi.Rule_From{{Source: &securityapi.Source{ServiceAccounts: []string{"shop/cart"}}}}})
	waitFor(t, ctx, "status cleared", func() (bool, string) {
		got, err := aps.Get(ctx, "jwt-only", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond, msg := condition(got)
		return cond == "" && !msg, cond
	})

	// The leader leaves; the other replica takes over and writes.
	stopA()
	waitLeader(t, ctx, kube, "pilot-b")
	fix(badRule)
	waitFor(t, ctx, "status written by the new leader", func() (bool, string) {
		got, err := aps.Get(ctx, "jwt-only", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cond, msg := condition(got)
		return msg && strings.Contains(cond, "spec.rules[0].when[0].key"), cond
	})
}

func waitLeader(t *testing.T, ctx context.Context, kube kubernetes.Interface, id string) {
	t.Helper()
	waitFor(t, ctx, id+" holds the status Lease", func() (bool, string) {
		l, err := kube.CoordinationV1().Leases("mesh-system").Get(ctx, "mesh-pilot-status", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		h := ""
		if l.Spec.HolderIdentity != nil {
			h = *l.Spec.HolderIdentity
		}
		return h == id, "holder " + h
	})
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 45*time.Second, true, func(context.Context) (bool, error) {
		ok, s := cond()
		last = s
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: never (last seen: %s)", what, last)
	}
}

// selfSigned returns the PEM certificate and key of a self-signed
// certificate for name.
func selfSigned(t *testing.T, name string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}

// credentialStatus returns pilot's credential condition ("" when absent)
// and whether the MSH0005 validation message is there.
func credentialStatus(dr *networkingv1.DestinationRule) (string, bool) {
	cond := ""
	for _, c := range dr.Status.Conditions {
		if c.GetType() == status.CredentialCondition {
			cond = c.GetStatus() + " " + c.GetReason() + " " + c.GetMessage()
		}
	}
	has := false
	for _, m := range dr.Status.ValidationMessages {
		if m.GetType().GetCode() == status.ClientCredentialCode {
			has = true
		}
	}
	return cond, has
}

// TestClientCredentialStatus runs pilot's watcher (reading Secrets) and
// status writer on the sandbox API server: a DestinationRule whose
// tls.credentialName (TLS origination at the egress gateway) names a
// Secret missing from the gateway's namespace gets the condition
// mesh.io/CredentialsServed False and the MSH0005 message naming the field
// and the namespace; one naming a usable Secret gets neither, nor does one
// no gateway sees (exported to its own namespace only); creating the
// missing Secret clears both, and making it unusable writes them again.
func TestClientCredentialStatus(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	istio := istioclient.NewForConfigOrDie(c.RESTConfig())
	installCRDs(t, ctx, kube, dynamic.NewForConfigOrDie(c.RESTConfig()))
	const gwNS, appNS = "egress-cred", "app-cred"
	for _, ns := range []string{"mesh-system", gwNS, appNS} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	certPEM, keyPEM := selfSigned(t, "gateway client")
	good := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "good-client"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}}
	if _, err := kube.CoreV1().Secrets(gwNS).Create(ctx, good, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Pods(gwNS).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "egress-0", Labels: map[string]string{"istio": "egressgateway"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "mesh/proxy:test"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gw := &networkingv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "egress"}}
	gw.Spec.Selector = map[string]string{"istio": "egressgateway"}
	gw.Spec.Servers = []*networkingapi.Server{{Port: &networkingapi.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"*"}}}
	if _, err := istio.NetworkingV1().Gateways(gwNS).Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dr := func(ns, name, credential string, exportTo ...string) {
		t.Helper()
		d := &networkingv1.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: name}}
		d.Spec.Host = "api.external.example"
		d.Spec.ExportTo = exportTo
		d.Spec.TrafficPolicy = &networkingapi.TrafficPolicy{PortLevelSettings: []*networkingapi.TrafficPolicy_PortTrafficPolicy{{
			Port: &networkingapi.PortSelector{Number: 443},
			Tls:  &networkingapi.ClientTLSSettings{Mode: networkingapi.ClientTLSSettings_MUTUAL, CredentialName: credential},
		}}}
		if _, err := istio.NetworkingV1().DestinationRules(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dr(gwNS, "missing", "missing-client", ".")
	dr(gwNS, "usable", "kubernetes://good-client", ".")
	dr(appNS, "unseen", "missing-client", ".") // no gateway runs in app-cred

	w := &status.Writer{Istio: istio, Kube: kube, Namespace: "mesh-system", Identity: "pilot-cred",
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond}
	watcher := &model.Watcher{Kube: kube, Istio: istio, RootNamespace: "mesh-system", SecretNamespaces: []string{"*"},
		OnSnapshot: func(s *model.Snapshot, _ model.Change) { w.Offer(s) }}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { _ = watcher.Run(runCtx); done <- struct{}{} }()
	go func() { _ = w.Run(runCtx); done <- struct{}{} }()
	defer func() { stop(); <-done; <-done }()
	waitLeader(t, ctx, kube, "pilot-cred")

	get := func(ns, name string) *networkingv1.DestinationRule {
		got, err := istio.NetworkingV1().DestinationRules(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	firing := func(what string) {
		t.Helper()
		waitFor(t, ctx, what, func() (bool, string) {
			got := get(gwNS, "missing")
			cond, msg := credentialStatus(got)
			return msg && strings.HasPrefix(cond, "False InvalidClientCredential ") &&
				strings.Contains(cond, `spec.trafficPolicy.portLevelSettings[0].tls.credentialName "missing-client" (gateways in `+gwNS+")") &&
				got.Status.ObservedGeneration == got.Generation, cond
		})
	}
	firing("MSH0005 on the DestinationRule naming a missing Secret")
	if cond := fmt.Sprint(credentialStatus(get(gwNS, "missing"))); !strings.Contains(cond, "no Secret "+gwNS+"/missing-client") {
		t.Errorf("condition %s does not name the missing Secret", cond)
	}
	// The writer has been through every DestinationRule of that snapshot;
	// the other two have neither part.
	for _, n := range []struct{ ns, name string }{{gwNS, "usable"}, {appNS, "unseen"}} {
		if cond, msg := credentialStatus(get(n.ns, n.name)); cond != "" || msg {
			t.Errorf("DestinationRule %s/%s: condition %q, MSH0005 %v; want neither", n.ns, n.name, cond, msg)
		}
	}

	// The Secret made: both parts go.
	missing := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "missing-client"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}}
	if _, err := kube.CoreV1().Secrets(gwNS).Create(ctx, missing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "status cleared once the Secret exists", func() (bool, string) {
		cond, msg := credentialStatus(get(gwNS, "missing"))
		return cond == "" && !msg, cond
	})

	// A key that is not the certificate's: unusable, reported again.
	_, otherKey := selfSigned(t, "other")
	missing.Data["tls.key"] = otherKey
	if _, err := kube.CoreV1().Secrets(gwNS).Update(ctx, missing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	firing("MSH0005 again once the Secret's key does not match its certificate")
}

// TestMetaRouteStatus: pilot's status writer writes, on a MetaRoute (mesh's
// own kind, through the dynamic client) that sets mirror, the condition
// mesh.io/Enforced False naming the field paths and the MSH0003 validation
// message, as on Istio kinds; removing the mirror clears both. The
// condition is written once, not again on its own update.
func TestMetaRouteStatus(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	istio := istioclient.NewForConfigOrDie(c.RESTConfig())
	dyn := dynamic.NewForConfigOrDie(c.RESTConfig())
	installCRDs(t, ctx, kube, dyn)
	for _, ns := range []string{"mesh-system", "rpc"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	mrs := dyn.Resource(meshnet.Resource).Namespace("rpc")
	obj := func(spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": meshnet.SchemeGroupVersion.String(), "kind": meshnet.Kind,
			"metadata": map[string]any{"name": "calc"}, "spec": spec,
		}}
	}
	route := map[string]any{"destination": map[string]any{"host": "calc"}}
	mirrored := map[string]any{"hosts": []any{"calc"}, "routes": []any{
		map[string]any{"match": map[string]any{"attributes": map[string]any{"method": map[string]any{"exact": "add"}}}, "route": []any{route}, "timeout": "1s"},
		map[string]any{"route": []any{route}, "mirror": map[string]any{"host": "calc-shadow"}, "mirrorPercentage": map[string]any{"value": 10.0}},
	}}
	if _, err := mrs.Create(ctx, obj(mirrored), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The writer's condition and whether the MSH0003 message is there, as
	// the API server stores them.
	read := func() (gen int64, cond, version string, msg bool, observed string, err error) {
		u, err := mrs.Get(ctx, "calc", metav1.GetOptions{})
		if err != nil {
			return 0, "", "", false, "", err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == status.ConditionType {
				cond = fmt.Sprint(m["status"], " ", m["message"])
			}
		}
		vms, _, _ := unstructured.NestedSlice(u.Object, "status", "validationMessages")
		for _, v := range vms {
			m, _ := v.(map[string]any)
			if code, _, _ := unstructured.NestedString(m, "type", "code"); code == status.MessageCode {
				msg = true
			}
		}
		// Istio's status JSON (protojson) writes the int64 as a string.
		st, _ := u.Object["status"].(map[string]any)
		observed = fmt.Sprint(st["observedGeneration"])
		return u.GetGeneration(), cond, u.GetResourceVersion(), msg, observed, nil
	}

	replica(t, ctx, kube, istio, dyn, "pilot-mr")
	waitLeader(t, ctx, kube, "pilot-mr")
	var written string
	waitFor(t, ctx, "MetaRoute status written", func() (bool, string) {
		gen, cond, tr, msg, observed, err := read()
		if err != nil {
			return false, err.Error()
		}
		written = tr
		return msg && strings.HasPrefix(cond, "False ") && strings.Contains(cond, "spec.routes[1].mirror:") &&
			strings.Contains(cond, "spec.routes[1].mirrorPercentage:") && !strings.Contains(cond, "spec.routes[0]") && observed == fmt.Sprint(gen), fmt.Sprintf("%s; message %v, observedGeneration %s of %d", cond, msg, observed, gen)
	})
	// Written once: its own write (which keeps the generation) is no
	// reason to write again, so a while later the object is unchanged.
	time.Sleep(3 * time.Second)
	if gen, cond, v, _, _, err := read(); err != nil || gen != 1 || v != written || !strings.HasPrefix(cond, "False ") {
		t.Fatalf("after the write: generation %d, condition %q, resourceVersion %s (written %s), err %v; want generation 1 and the object as written", gen, cond, v, written, err)
	}

	// Fixed: no mirror; pilot's condition and message go.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		u, err := mrs.Get(ctx, "calc", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "routes")
		r1 := routes[1].(map[string]any)
		delete(r1, "mirror")
		delete(r1, "mirrorPercentage")
		if err := unstructured.SetNestedSlice(u.Object, routes, "spec", "routes"); err != nil {
			return false, err
		}
		_, err = mrs.Update(ctx, u, metav1.UpdateOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "MetaRoute status cleared", func() (bool, string) {
		gen, cond, _, msg, _, err := read()
		if err != nil {
			return false, err.Error()
		}
		return gen == 2 && cond == "" && !msg, fmt.Sprintf("generation %d, condition %q, message %v", gen, cond, msg)
	})
}
