package adminclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
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
	// LocalAddress is the host:port that reaches the pod's port: the first
	// of the addresses listened on (127.0.0.1 for PortForward).
	LocalAddress string
	// LocalPort is the port listened on.
	LocalPort int
	stop      chan struct{}
	finished  chan struct{}
	err       error // why the forward ended; read after finished is closed
}

// Close ends the port-forward.
func (f *Forward) Close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.finished
}

// Done is closed when the forward has ended, by Close or because the
// connection to the pod was lost; Err then says why.
func (f *Forward) Done() <-chan struct{} { return f.finished }

// Err is why the forward ended (nil after Close); valid once Done is closed.
func (f *Forward) Err() error {
	<-f.finished
	return f.err
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
	return PortForwardOn(ctx, cfg, ForwardOptions{Namespace: namespace, Pod: pod, RemotePort: port}, errOut)
}

// ForwardOptions say what PortForwardOn forwards.
type ForwardOptions struct {
	Namespace, Pod string
	RemotePort     int
	// Addresses to listen on, as kubectl port-forward's --address takes them:
	// IP addresses, or "localhost" for 127.0.0.1 and ::1 (either is enough).
	// Empty: 127.0.0.1.
	Addresses []string
	// LocalPort to listen on; 0 picks a free one.
	LocalPort int
}

// PortForwardOn is PortForward with the local addresses and port chosen.
func PortForwardOn(ctx context.Context, cfg *rest.Config, o ForwardOptions, errOut io.Writer) (*Forward, error) {
	namespace, pod, port := o.Namespace, o.Pod, o.RemotePort
	addrs := o.Addresses
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1"}
	}
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
	f := &Forward{stop: make(chan struct{}), finished: make(chan struct{})}
	ready := make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, addrs, []string{fmt.Sprintf("%d:%d", o.LocalPort, port)}, f.stop, ready, io.Discard, errOut)
	if err != nil {
		return nil, err
	}
	go func() {
		f.err = fw.ForwardPorts()
		close(f.finished)
	}()
	select {
	case <-ready:
	case <-f.finished:
		return nil, fmt.Errorf("port-forward to %s/%s:%d: %w", namespace, pod, port, f.err)
	case <-ctx.Done():
		close(f.stop)
		<-f.finished
		return nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		f.Close()
		return nil, fmt.Errorf("port-forward to %s/%s:%d: no local port", namespace, pod, port)
	}
	f.LocalPort = int(ports[0].Local)
	f.LocalAddress = net.JoinHostPort(addrs[0], strconv.Itoa(f.LocalPort))
	return f, nil
}
