package sandbox_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// standIn is a local server that port-forwards to any pod's port of the same
// number reach (Options.PortForwards), standing in for the pod's process.
var standIn net.Listener

func TestMain(m *testing.M) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen for the port-forward stand-in:", err)
		os.Exit(1)
	}
	standIn = l
	sandboxtest.MainWithOptions(m, sandbox.Options{PortForwards: []int32{int32(l.Addr().(*net.TCPAddr).Port)}})
}

func adminClient(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	return kubernetes.NewForConfigOrDie(sandboxtest.Cluster(t).RESTConfig())
}

func TestAPIServerReportsPinnedVersion(t *testing.T) {
	v, err := adminClient(t).Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.GitVersion, "v1.34.") || v.Major != "1" || v.Minor != "34" {
		t.Errorf("server version = %q (major %q, minor %q), want v1.34.x as pinned in tools/Makefile", v.GitVersion, v.Major, v.Minor)
	}
}

func TestAdminKubeconfigIsSystemMaster(t *testing.T) {
	c := sandboxtest.Cluster(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.KubeconfigPath())
	if err != nil {
		t.Fatalf("load %s: %v", c.KubeconfigPath(), err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !contains(review.Status.UserInfo.Groups, "system:masters") {
		t.Errorf("admin kubeconfig user %q has groups %v, want system:masters", review.Status.UserInfo.Username, review.Status.UserInfo.Groups)
	}
	if _, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("admin cannot list pods cluster-wide: %v", err)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) == 0 {
		t.Fatal("no nodes registered")
	}
	for _, n := range nodes.Items {
		if !nodeReady(n) || len(n.Spec.Taints) > 0 {
			t.Errorf("node %s: ready=%v taints=%v, want Ready without taints", n.Name, nodeReady(n), n.Spec.Taints)
		}
	}
}

func TestLimitedUserNeedsRBAC(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx := context.Background()
	path, err := c.UserKubeconfig("alice", "team-a")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	alice := kubernetes.NewForConfigOrDie(cfg)

	review, err := alice.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := review.Status.UserInfo; got.Username != "alice" || !contains(got.Groups, "team-a") {
		t.Errorf("user kubeconfig authenticates as %q %v, want alice in team-a", got.Username, got.Groups)
	}
	if _, err := alice.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("alice listing pods cluster-wide: err = %v, want Forbidden", err)
	}

	// A RoleBinding in one namespace opens that namespace only.
	admin := adminClient(t)
	ns := createNamespace(t, admin, "rbac-")
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "alice"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The authorizer learns of the binding through a watch; give it a moment.
	var listErr error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		_, listErr = alice.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return listErr == nil, nil
	})
	if err != nil {
		t.Errorf("alice listing pods in %s after the view binding: %v", ns, listErr)
	}
	if _, err := alice.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice listing pods cluster-wide after a namespaced binding: err = %v, want Forbidden", err)
	}
}

func TestServiceAccountTokensAuthenticate(t *testing.T) {
	c := sandboxtest.Cluster(t)
	admin := adminClient(t)
	ctx := context.Background()
	ns := createNamespace(t, admin, "sa-")
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	cfg := &rest.Config{Host: c.Server(), BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM()}}
	robot := kubernetes.NewForConfigOrDie(cfg)
	review, err := robot.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("authenticate with the ServiceAccount token: %v", err)
	}
	if want := "system:serviceaccount:" + ns + ":robot"; review.Status.UserInfo.Username != want {
		t.Errorf("token authenticates as %q, want %q", review.Status.UserInfo.Username, want)
	}
}

func createNamespace(t *testing.T, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}
