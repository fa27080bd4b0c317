package runtime_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// The API server's logs, port-forward and exec for a runtime pod reach the
// runtime's kubelet endpoint, as `kubectl logs|port-forward|exec` do.
func TestKubeletAPIThroughTheAPIServer(t *testing.T) {
	_, cs := startRuntime(t)
	cfg := sandboxtest.Cluster(t).RESTConfig()
	ns := namespace(t, cs)
	ctx := context.Background()
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, samplePod("ratings"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, ns, pod.Name, "Ready", ready)

	t.Run("logs", func(t *testing.T) {
		b, err := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "ratings"}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "msg=serving role=ratings") {
			t.Fatalf("logs of the ratings container: %q, want the sample app's start line", b)
		}
		tail, err := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "ratings", TailLines: new(int64)}).DoRaw(ctx)
		if err != nil || len(tail) != 0 {
			t.Fatalf("tailLines=0: %q, %v; want nothing", tail, err)
		}
		if _, err := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "nope"}).DoRaw(ctx); err == nil {
			t.Fatal("logs of a container the pod does not have: no error")
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		fwd, err := adminclient.PortForward(ctx, cfg, ns, pod.Name, 9080, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer fwd.Close()
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
		resp, err := c.Get("http://" + fwd.LocalAddress + "/ratings/0")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"ratings"`) {
			t.Fatalf("ratings through port-forward: %s %s", resp.Status, b)
		}
	})

	t.Run("exec", func(t *testing.T) {
		req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod.Name).SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "ratings", Command: []string{"sh", "-c", "hostname; ip -o -4 addr show eth0; exit 3"},
				Stdout: true, Stderr: true}, scheme.ParameterCodec)
		ex, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, req.URL())
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
		p, _ := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if !strings.Contains(out.String(), pod.Name) || !strings.Contains(out.String(), p.Status.PodIP+"/") {
			t.Fatalf("exec output %q (stderr %q), want the pod's host name and IP %s", out.String(), errOut.String(), p.Status.PodIP)
		}
		var ee interface{ ExitStatus() int }
		if e, ok := err.(interface{ ExitStatus() int }); ok {
			ee = e
		}
		if ee == nil || ee.ExitStatus() != 3 {
			t.Fatalf("exec exit: %v, want exit status 3", err)
		}
	})
}
