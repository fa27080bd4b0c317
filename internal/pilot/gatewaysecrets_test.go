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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/status"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/spec"
)

// TestGatewaySecretsFollowGateways runs pilot as its own service account
// with the RBAC the charts render by default (no namespace listed in
// values.pilot.gatewaySecretNamespaces): it becomes ready without reading
// Secrets cluster-wide or in any namespace but its own. Namespaces made
// afterwards, while it runs: sec-gwapi with a Gateway API Gateway of class
// mesh, sec-istio with an Istio Gateway's workload, sec-other with only a
// Secret. The gateways of the first two are served their Secrets over SDS
// and their statuses say the certificates resolve, with no restart;
// pilot may then list Secrets in those two and still not in sec-other,
// whose Secret it cannot get. When the Gateway API Gateway goes, pilot may
// no longer list sec-gwapi's Secrets.
func TestGatewaySecretsFollowGateways(t *testing.T) {
	e := newEnv(t, 4*time.Minute)
	ctx, kube := e.ctx, e.kube
	istio := istioclient.NewForConfigOrDie(e.cfg)
	gw := gwclient.NewForConfigOrDie(e.cfg)
	e.installGatewayAPICRDs()
	const pilotNS, rev = "sec-system", "sec"
	e.createNamespaces(pilotNS)

	// The chart's RBAC and service account for pilot, as mesh install
	// applies them.
	op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=minimal", "namespace=" + pilotNS, "revision=" + rev}})
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
	if !canList(pilotNS) || canList("sec-gwapi") || canList("") {
		t.Fatalf("before pilot runs it may list Secrets: %s %v, sec-gwapi %v, cluster-wide %v; want only %s", pilotNS, canList(pilotNS), canList("sec-gwapi"), canList(""), pilotNS)
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
	if _, err := gw.GatewayV1().GatewayClasses().Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "mesh"},
		Spec: gwv1.GatewayClassSpec{ControllerName: "mesh.dev/gateway-controller"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	p := e.startPilot(&pilot.Options{Namespace: pilotNS, Revision: rev, Kubeconfig: kubeconfig})

	// The namespaces come after pilot is up: what it reads follows them.
	ca := newTestCA(t, "ingress CA")
	e.createNamespaces("sec-gwapi", "sec-istio", "sec-other")
	for _, ns := range []string{"sec-gwapi", "sec-istio", "sec-other"} {
		crt, key, _, _ := ca.issue(t, ns+".example.com", false)
		if _, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cert"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": crt, "tls.key": key}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gatewayPod := func(ns string, lbls map[string]string) {
		t.Helper()
		if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ingress"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "ingress-0", Labels: lbls},
			Spec:       corev1.PodSpec{ServiceAccountName: "ingress", Containers: []corev1.Container{{Name: "istio-proxy", Image: "mesh/proxy:test"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// sec-gwapi: a Gateway API Gateway, and a pod as its automated
	// deployment's (labelled with the Gateway's name).
	if _, err := gw.GatewayV1().Gateways("sec-gwapi").Create(ctx, &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: gwv1.GatewaySpec{GatewayClassName: "mesh", Listeners: []gwv1.Listener{{
			Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType, Hostname: ptr(gwv1.Hostname("api.sec-gwapi.example.com")),
			TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "cert"}}},
		}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gatewayPod("sec-gwapi", map[string]string{"gateway.networking.k8s.io/gateway-name": "api"})
	// sec-istio: the workload of an Istio Gateway that lives elsewhere
	// (pilot's namespace), served its own namespace's Secret.
	gatewayPod("sec-istio", map[string]string{"istio": "ingress-sec-istio"})
	if err := e.applyYAML(`{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "web"},
  "spec": {"selector": {"istio": "ingress-sec-istio"}, "servers": [
    {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["sec-istio.example.com"], "tls": {"mode": "SIMPLE", "credentialName": "cert"}}]}}`, pilotNS); err != nil {
		t.Fatal(err)
	}

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
	for _, ns := range []string{"sec-gwapi", "sec-istio"} {
		eventually("the gateway in "+ns+" is served its Secret over SDS", func() error {
			if s := sds(ns); !strings.Contains(s+" ", "kubernetes://cert ") {
				return fmt.Errorf("SDS secrets for %s's gateway: %q", ns, s)
			}
			return nil
		})
	}
	eventually("the Gateway API listener in sec-gwapi resolves its Secret", func() error {
		g, err := gw.GatewayV1().Gateways("sec-gwapi").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, l := range g.Status.Listeners {
			if c := apimeta.FindStatusCondition(l.Conditions, string(gwv1.ListenerConditionResolvedRefs)); c != nil {
				if c.Status != metav1.ConditionTrue {
					return fmt.Errorf("ResolvedRefs %s/%s: %s", c.Status, c.Reason, c.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("no listener ResolvedRefs in %s", js(g.Status))
	})
	eventually("the Istio Gateway reports no credential problem", func() error {
		g, err := istio.NetworkingV1().Gateways(pilotNS).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range g.Status.Conditions {
			if c.Type == status.CredentialCondition && c.Status == "False" {
				return fmt.Errorf("%s: %s", c.Type, c.Message)
			}
		}
		if g.Status.ObservedGeneration != g.Generation {
			return fmt.Errorf("status of generation %d, want %d", g.Status.ObservedGeneration, g.Generation)
		}
		return nil
	})

	// What pilot may read now: the gateways' namespaces, not sec-other's
	// nor every namespace's.
	if !canList("sec-gwapi") || !canList("sec-istio") || canList("sec-other") || canList("") {
		t.Errorf("pilot may list Secrets: sec-gwapi %v, sec-istio %v, sec-other %v, cluster-wide %v; want the first two only",
			canList("sec-gwapi"), canList("sec-istio"), canList("sec-other"), canList(""))
	}
	asPilot, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.NewForConfigOrDie(asPilot).CoreV1().Secrets("sec-other").Get(ctx, "cert", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("pilot's service account gets sec-other's Secret: err %v, want Forbidden", err)
	}

	// The Gateway API Gateway goes: so does pilot's access to sec-gwapi.
	if err := gw.GatewayV1().Gateways("sec-gwapi").Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kube.CoreV1().Pods("sec-gwapi").Delete(ctx, "ingress-0", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	eventually("pilot may no longer list sec-gwapi's Secrets", func() error {
		if canList("sec-gwapi") {
			return fmt.Errorf("pilot may still list Secrets in sec-gwapi")
		}
		return nil
	})
	if !canList("sec-istio") {
		t.Errorf("pilot may no longer list Secrets in sec-istio, whose gateway still runs")
	}
}
