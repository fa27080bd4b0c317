package pilot_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/spec"
)

// TestGatewaySecretsOnlyInListedNamespaces runs pilot as its own service
// account with the RBAC the charts render for values.pilot.
// gatewaySecretNamespaces [sec-a]: it becomes ready without reading
// Secrets cluster-wide, serves the gateway in sec-a its Secret, and
// serves the one in sec-b (a namespace it may not read) nothing, saying
// on the Istio Gateway's status and on the Gateway API listener's
// ResolvedRefs which namespace is not read and which value to set.
func TestGatewaySecretsOnlyInListedNamespaces(t *testing.T) {
	e := newEnv(t, 4*time.Minute)
	ctx, kube := e.ctx, e.kube
	istio := istioclient.NewForConfigOrDie(e.cfg)
	gw := gwclient.NewForConfigOrDie(e.cfg)
	e.installGatewayAPICRDs()
	const pilotNS, rev = "sec-system", "sec"
	e.createNamespaces(pilotNS, "sec-a", "sec-b")

	// The chart's RBAC and service account for pilot, as mesh install
	// applies them.
	op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=minimal", "namespace=" + pilotNS, "revision=" + rev,
		"values.pilot.gatewaySecretNamespaces=[sec-a]"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := render.Render(op)
	if err != nil {
		t.Fatal(err)
	}
	sa := "mesh-pilot-" + rev
	for _, o := range m.Objects() {
		switch o.GetKind() {
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount":
			if err := e.applyObj(o, o.GetNamespace()); err != nil {
				t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
	}
	canList := func(ns string) bool {
		t.Helper()
		r, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: "system:serviceaccount:" + pilotNS + ":" + sa, Groups: []string{"system:serviceaccounts", "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "secrets"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	if !canList("sec-a") || canList("sec-b") || canList("") {
		t.Fatalf("pilot may list Secrets: sec-a %v, sec-b %v, cluster-wide %v; want only sec-a", canList("sec-a"), canList("sec-b"), canList(""))
	}
	tr, err := kube.CoreV1().ServiceAccounts(pilotNS).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["sandbox"] = &clientcmdapi.Cluster{Server: e.cfg.Host, CertificateAuthorityData: e.cfg.CAData, CertificateAuthority: e.cfg.CAFile}
	kc.AuthInfos["pilot"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts["pilot"] = &clientcmdapi.Context{Cluster: "sandbox", AuthInfo: "pilot"}
	kc.CurrentContext = "pilot"
	kubeconfig := filepath.Join(t.TempDir(), "pilot.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}

	ca := newTestCA(t, "ingress CA")
	for _, ns := range []string{"sec-a", "sec-b"} {
		crt, key, _, _ := ca.issue(t, ns+".example.com", false)
		if _, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cert"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": crt, "tls.key": key}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ingress"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "ingress-0", Labels: map[string]string{"istio": "ingress-" + ns}},
			Spec:       corev1.PodSpec{ServiceAccountName: "ingress", Containers: []corev1.Container{{Name: "istio-proxy", Image: "mesh/proxy:test"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := e.applyYAML(fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "web"},
  "spec": {"selector": {"istio": "ingress-%[1]s"}, "servers": [
    {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["%[1]s.example.com"], "tls": {"mode": "SIMPLE", "credentialName": "cert"}}]}}`, ns), ns); err != nil {
			t.Fatal(err)
		}
		if _, err := gw.GatewayV1().Gateways(ns).Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "api"},
			Spec: gwv1.GatewaySpec{GatewayClassName: "mesh", Listeners: []gwv1.Listener{{
				Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType, Hostname: ptr(gwv1.Hostname("api." + ns + ".example.com")),
				TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "cert"}}},
			}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "mesh.dev/gateway-controller"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	p := e.startPilot(&pilot.Options{Namespace: pilotNS, Revision: rev, Kubeconfig: kubeconfig, SecretNamespaces: []string{"sec-a"}})

	eventually := func(what string, f func() error) {
		t.Helper()
		var last error
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			last = f()
			return last == nil, nil
		}); err != nil {
			t.Fatalf("%s: %v (last: %v)", what, err, last)
		}
	}
	sds := func(ns string) string {
		res, err := p.Server.Resources(model.NodeID(model.Router, "198.18.250.1", "ingress-0", ns))
		if err != nil {
			return "error: " + err.Error()
		}
		return strings.Join(res.Names(resourcev3.SecretType), " ")
	}
	eventually("the gateway in sec-a is served its Secret", func() error {
		if s := sds("sec-a"); !strings.Contains(s+" ", "kubernetes://cert ") {
			return fmt.Errorf("SDS secrets for sec-a's gateway: %q", s)
		}
		return nil
	})
	if s := sds("sec-b"); strings.Contains(s, "cert") {
		t.Errorf("the gateway in sec-b, whose Secrets pilot does not read, is served %q", s)
	}

	notRead := []string{"pilot does not read Secrets in namespace sec-b", "values.pilot.gatewaySecretNamespaces"}
	eventually("the Istio Gateway in sec-b says its namespace is not read", func() error {
		g, err := istio.NetworkingV1().Gateways("sec-b").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		return credentialCondition(g, append([]string{`spec.servers[0].tls.credentialName "cert"`}, notRead...)...)
	})
	listener := func(ns string) (*metav1.Condition, error) {
		g, err := gw.GatewayV1().Gateways(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		for _, l := range g.Status.Listeners {
			if c := apimeta.FindStatusCondition(l.Conditions, string(gwv1.ListenerConditionResolvedRefs)); c != nil {
				return c, nil
			}
		}
		return nil, fmt.Errorf("no listener ResolvedRefs in %s", js(g.Status))
	}
	eventually("the Gateway API listener in sec-b is InvalidCertificateRef, saying why", func() error {
		c, err := listener("sec-b")
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionFalse || c.Reason != string(gwv1.ListenerReasonInvalidCertificateRef) {
			return fmt.Errorf("ResolvedRefs %s/%s: %s", c.Status, c.Reason, c.Message)
		}
		for _, w := range notRead {
			if !strings.Contains(c.Message, w) {
				return fmt.Errorf("ResolvedRefs message %q lacks %q", c.Message, w)
			}
		}
		return nil
	})
	eventually("the Gateway API listener in sec-a resolves its Secret", func() error {
		c, err := listener("sec-a")
		if err != nil {
			return err
		}
		if c.Status != metav1.ConditionTrue {
			return fmt.Errorf("ResolvedRefs %s/%s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
}
