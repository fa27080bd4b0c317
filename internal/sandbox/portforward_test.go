package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

var serveStandIn sync.Once

func TestPortForwardToPodReachesLocalStandIn(t *testing.T) {
	c := sandboxtest.Cluster(t)
	admin := adminClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	port := int32(standIn.Addr().(*net.TCPAddr).Port)
	serveStandIn.Do(func() {
		// Served for the life of the test binary, so -count=N reuses it.
		go http.Serve(standIn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "stand-in for %s", r.URL.Path)
		}))
	})

	ns := createNamespace(t, admin, "pf-")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: "registry.invalid/web:1",
			Ports: []corev1.ContainerPort{{ContainerPort: port}},
		}}},
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := admin.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	if err != nil {
		t.Fatalf("pod web not Running: %v", err)
	}

	cfg := c.RESTConfig()
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := admin.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name("web").SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	var errOut strings.Builder
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	fwErr := make(chan error, 1)
	go func() { fwErr <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-fwErr:
		t.Fatalf("port-forward: %v", err)
	case <-ctx.Done():
		t.Fatal("port-forward never became ready")
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hello", ports[0].Local))
	if err != nil {
		t.Fatalf("GET through the port-forward: %v (%s)", err, errOut.String())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "stand-in for /hello" {
		t.Errorf("port-forward answered %q (status %s), want the stand-in's reply; errors: %s", body, resp.Status, errOut.String())
	}
}
