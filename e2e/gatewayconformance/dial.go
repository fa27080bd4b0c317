package gatewayconformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	confgrpc "sigs.k8s.io/gateway-api/conformance/utils/grpc"
)

// serviceDialer dials a Service's cluster IP from the test process as a
// node's kube-proxy would send it: to one ready endpoint of that Service
// port, at the pod IP (which the host reaches over the runtime's bridge).
// The sandbox runs no kube-proxy on the host, and the cluster IPs the
// Gateways report as their addresses are routed nowhere there; inside the
// runtime's pods they are DNATed the same way. Other addresses are dialed
// as they are.
type serviceDialer struct {
	kube kubernetes.Interface
}

func (d *serviceDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	target, err := d.resolve(ctx, addr)
	if err != nil {
		return nil, err
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, target)
}

// resolve maps clusterIP:port to podIP:targetPort.
func (d *serviceDialer) resolve(ctx context.Context, addr string) (string, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", err
	}
	svcs, err := d.kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	var svc *corev1.Service
	for i := range svcs.Items {
		for _, ip := range svcs.Items[i].Spec.ClusterIPs {
			if ip == host {
				svc = &svcs.Items[i]
			}
		}
	}
	if svc == nil {
		return addr, nil
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return "", fmt.Errorf("service %s/%s (%s) has no port %d", svc.Namespace, svc.Name, host, port)
	}
	slices, err := d.kube.DiscoveryV1().EndpointSlices(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc.Name})
	if err != nil {
		return "", err
	}
	var targets []string
	for _, s := range slices.Items {
		var tport int32
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == sp.Name && p.Port != nil {
				tport = *p.Port
			}
		}
		if tport == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				targets = append(targets, net.JoinHostPort(a, strconv.Itoa(int(tport))))
			}
		}
	}
	if len(targets) == 0 {
		// As with kube-proxy: a Service with no ready endpoint refuses.
		return "", fmt.Errorf("service %s/%s port %d has no ready endpoint", svc.Namespace, svc.Name, port)
	}
	return targets[rand.IntN(len(targets))], nil
}

// grpcClient is the suite's gRPC client with the serviceDialer under it:
// the suite's own DefaultClient dials the Gateway's cluster IP directly.
// One connection per address and authority, shared by the suite's tests
// (which run in parallel), dropped when the suite's client resets it.
type grpcClient struct {
	dialer *serviceDialer
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
}

func (c *grpcClient) SendRPC(t *testing.T, address string, expected confgrpc.ExpectedResponse, timeout time.Duration) (*confgrpc.Response, error) {
	t.Helper()
	authority := ""
	if expected.RequestMetadata != nil {
		authority = expected.RequestMetadata.Authority
	}
	key := address + "|" + authority
	c.mu.Lock()
	if c.conns == nil {
		c.conns = map[string]*grpc.ClientConn{}
	}
	conn := c.conns[key]
	if conn == nil {
		opts := []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return c.dialer.DialContext(ctx, "tcp", addr)
			}),
		}
		if authority != "" {
			opts = append(opts, grpc.WithAuthority(authority))
		}
		var err error
		if conn, err = grpc.NewClient("passthrough:///"+address, opts...); err != nil {
			c.mu.Unlock()
			return &confgrpc.Response{}, err
		}
		c.conns[key] = conn
	}
	c.mu.Unlock()
	one := &confgrpc.DefaultClient{Conn: conn}
	resp, err := one.SendRPC(t, address, expected, timeout)
	if one.Conn == nil { // the suite's client closed it after an Internal error
		c.mu.Lock()
		if c.conns[key] == conn {
			delete(c.conns, key)
		}
		c.mu.Unlock()
	}
	return resp, err
}

func (c *grpcClient) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, conn := range c.conns {
		conn.Close()
		delete(c.conns, k)
	}
}
