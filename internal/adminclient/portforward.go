package adminclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// Forward is an open port-forward to a pod.
type Forward struct {
	// LocalAddress is the 127.0.0.1:port that reaches the pod's port.
	LocalAddress string
	stop         chan struct{}
	done         chan error
}

// Close ends the port-forward.
func (f *Forward) Close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

// SplitPodName splits "name.namespace" at its last dot; namespace is "" when absent.
func SplitPodName(arg string) (name, namespace string) {
	if i := strings.LastIndex(arg, "."); i > 0 && i < len(arg)-1 {
		return arg[:i], arg[i+1:]
	}
	return arg, ""
}

// PortForward opens a port-forward from an ephemeral port on 127.0.0.1 to
// port of the pod, after checking that the pod exists and is running.
// errOut receives the forwarder's own complaints about broken connections.
func PortForward(ctx context.Context, cfg *rest.Config, namespace, pod string, port int, errOut io.Writer) (*Forward, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	p, err := client.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("pod %q not found in namespace %q (give the pod as NAME.NAMESPACE or use -n)", pod, namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", namespace, pod, err)
	}
	if p.Status.Phase != corev1.PodRunning {
		return nil, fmt.Errorf("pod %s/%s is %s, not Running: its proxy cannot be reached", namespace, pod, p.Status.Phase)
	}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, err
	}
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL())
	f := &Forward{stop: make(chan struct{}), done: make(chan error, 1)}
	ready := make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, f.stop, ready, io.Discard, errOut)
	if err != nil {
		return nil, err
	}
	go func() { f.done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-f.done:
		return nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, err)
	case <-ctx.Done():
		close(f.stop)
		<-f.done
		return nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		f.Close()
		return nil, fmt.Errorf("port-forward to %s/%s:%d: no local port", namespace, pod, port)
	}
	f.LocalAddress = fmt.Sprintf("127.0.0.1:%d", ports[0].Local)
	return f, nil
}
