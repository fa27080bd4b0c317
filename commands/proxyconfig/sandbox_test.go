package proxyconfig

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/proxy/agent"
	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
	"strconv"
)

// podAdminPort is the admin port the test pod declares. The sandbox's kwok
// connects port-forwards to that port of any pod to the same port on
// 127.0.0.1, where the test runs a mesh-proxy's admin API.
var podAdminPort int

func TestMain(m *testing.M) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	podAdminPort = l.Addr().(*net.TCPAddr).Port
	// Freed now and bound again by the proxy in the test; nothing else on
	// the machine picks a port it was just handed in the meantime.
	l.Close()
	sandboxtest.MainWithOptions(m, sandbox.Options{PortForwards: []int32{int32(podAdminPort)}})
}

// TestPodThroughPortForward reads a proxy's config the way an operator does
// (`mesh proxy-config cluster POD.NAMESPACE`): the kube-apiserver's real
// portforward subresource, answered by kwok, reaching a mesh-proxy's admin
// API. Not exercised: a kubelet and a proxy running inside a pod network.
func TestPodThroughPortForward(t *testing.T) {
	c := sandboxtest.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pc-"}}
	ns, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-v1-0"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "istio-proxy", Image: "registry.invalid/mesh-proxy:1",
			Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: int32(podAdminPort)}},
		}}},
	}
	if _, err := client.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(ns.Name).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("pod not Running: %v", err)
	}

	// A mesh-proxy fed over xDS, its admin API on the forwarded port.
	cp := startLiveControlPlane(t)
	cp.publish("1", 10*time.Second, true)
	p, err := agent.New(agent.Options{XDSAddress: cp.addr, NodeID: liveNode, AdminAddress: net.JoinHostPort("127.0.0.1", itoa(podAdminPort)), Level: new(slog.LevelVar)})
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	if err := p.Start(pctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pcancel(); p.Close() })
	waitFor(t, p.AdminAddr(), "the snapshot", func(d string) bool { return strings.Contains(d, "ratings.default") })

	kubeconfig := c.KubeconfigPath()
	runKube := func(args ...string) (string, error) {
		out, _, err := runWithKubeconfig(t, kubeconfig, args...)
		return out, err
	}
	target := pod.Name + "." + ns.Name
	out, err := runKube("cluster", target, "--admin-port", itoa(podAdminPort))
	if err != nil {
		t.Fatalf("cluster %s: %v", target, err)
	}
	if !strings.Contains(out, "ratings.default.svc.cluster.local   9080   v1") {
		t.Errorf("cluster table through the port-forward:\n%s", out)
	}
	out, err = runKube("diff", target, "admin://"+p.AdminAddr(), "--admin-port", itoa(podAdminPort))
	if exitCode(err) != 0 {
		t.Errorf("the pod and its own admin address differ (exit %d, %v):\n%s", exitCode(err), err, out)
	}
	_, err = runKube("cluster", "no-such-pod."+ns.Name, "--admin-port", itoa(podAdminPort))
	if err == nil || !strings.Contains(err.Error(), `pod "no-such-pod" not found in namespace "`+ns.Name+`"`) {
		t.Errorf("missing pod: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
