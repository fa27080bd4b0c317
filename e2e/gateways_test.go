package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fromPod is an HTTP client whose connections start inside pod's network
// namespace, as the pod's application's do: its sidecar captures them.
// Every connection goes to dial (an address the capture sends to the
// outbound listener of its port), whatever the URL's host, which only
// names the Host header, as a name resolved to any address would.
func (e *env) fromPod(pod *corev1.Pod, dial string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return e.rt.DialFromPod(ctx, pod.UID, dial) }}}
}

// TestGatewaysAcrossProcesses runs the east-west and egress gateway patterns
// through real processes on the sandbox: the demo's pilot, ingress and
// egress gateways and Bookinfo's sidecars (STRICT mTLS), each a mesh-proxy
// process of its own pod, and external servers on the host's address on the
// pods' network, which no Service names.
//
// East-west (AUTO_PASSTHROUGH): the ingress gateway gets Istio's
// cross-network server (port 15443, TLS AUTO_PASSTHROUGH, hosts *.local);
// a ServiceEntry names a "remote" ratings whose only endpoint is that
// server, with ISTIO_MUTUAL and the SNI of the real ratings service, as a
// remote network's gateway is reached. productpage's request reaches
// ratings through the gateway, and ratings' AuthorizationPolicy, which
// admits productpage's and reviews' identities but not the gateway's, admits
// it: the client's mTLS went through the gateway untouched. The same request
// from details is refused by that policy.
//
// Egress: productpage's sidecar sends to the egress gateway, which sends
// on to the external servers: plain HTTP; HTTP over mesh mTLS to an
// ISTIO_MUTUAL server (the DestinationRule's sni naming the host); and TLS
// passthrough, the application seeing the external server's own
// certificate. The external servers see the egress gateway's address, and
// the ISTIO_MUTUAL server refuses connections without a mesh certificate.
func TestGatewaysAcrossProcesses(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	e.bookinfoOnMesh()
	ctx := context.Background()
	istio := istioclient.NewForConfigOrDie(e.c.RESTConfig())
	ingress := e.pod("mesh-system", "app=mesh-ingressgateway")
	egress := e.pod("mesh-system", "app=mesh-egressgateway")
	productpage := e.pod("bookinfo", "app=productpage")
	details := e.pod("bookinfo", "app=details")

	// External servers, on the host's address on the pods' network.
	host := e.rt.Gateway()
	listen := func() net.Listener {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	httpL := listen()
	ext := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "external saw %s from %s", r.Host, ip)
	})}
	go ext.Serve(httpL)
	defer ext.Close()
	cert, pool, serial := externalCertificate(t, "secure.external.example")
	tlsL := listen()
	go func() {
		for {
			c, err := tlsL.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
				line, err := bufio.NewReader(tc).ReadString('\n')
				if err == nil {
					ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
					fmt.Fprintf(tc, "secure external saw %s from %s\n", strings.TrimSpace(line), ip)
				}
			}(c)
		}
	}()
	httpPort := strconv.Itoa(httpL.Addr().(*net.TCPAddr).Port)
	tlsPort := strconv.Itoa(tlsL.Addr().(*net.TCPAddr).Port)

	const egressSvc = "mesh-egressgateway.mesh-system.svc.cluster.local"
	manifest := `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings-remote}
spec:
  hosts: [ratings.remote.example]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: "` + ingress.Status.PodIP + `", ports: {http: 15443}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings-remote}
spec:
  host: ratings.remote.example
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, sni: outbound_.9080_._.ratings.bookinfo.svc.cluster.local}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-callers}
spec:
  selector: {matchLabels: {app: ratings}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/bookinfo/sa/bookinfo-productpage, cluster.local/ns/bookinfo/sa/bookinfo-reviews]}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [api.external.example, mtls.external.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ` + httpPort + `}]
  endpoints: [{address: "` + host + `"}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure-external}
spec:
  hosts: [secure.external.example]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS, targetPort: ` + tlsPort + `}]
  endpoints: [{address: "` + host + `"}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [api.external.example]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [mtls.external.example]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [secure.external.example]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway}
spec:
  host: ` + egressSvc + `
  subsets:
  - name: mtls
    labels: {istio: egressgateway}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: ISTIO_MUTUAL, sni: mtls.external.example}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-external}
spec:
  hosts: [api.external.example]
  gateways: [mesh, egress]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: ` + egressSvc + `, port: {number: 80}}}]
  - match: [{gateways: [egress], port: 80}]
    route: [{destination: {host: api.external.example, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mtls-external}
spec:
  hosts: [mtls.external.example]
  gateways: [mesh, egress]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: ` + egressSvc + `, subset: mtls, port: {number: 443}}}]
  - match: [{gateways: [egress], port: 443}]
    route: [{destination: {host: mtls.external.example, port: {number: 80}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure-external}
spec:
  hosts: [secure.external.example]
  gateways: [mesh, egress]
  tls:
  - match: [{gateways: [mesh], port: 443, sniHosts: [secure.external.example]}]
    route: [{destination: {host: ` + egressSvc + `, port: {number: 443}}}]
  - match: [{gateways: [egress], port: 443, sniHosts: [secure.external.example]}]
    route: [{destination: {host: secure.external.example, port: {number: 443}}}]
`
	// Later tests of the package start from Bookinfo as the demo leaves it.
	t.Cleanup(func() {
		nw, sec := istio.NetworkingV1(), istio.SecurityV1()
		for _, del := range []func() error{
			func() error { return nw.Gateways("bookinfo").Delete(ctx, "cross-network", metav1.DeleteOptions{}) },
			func() error { return nw.Gateways("bookinfo").Delete(ctx, "egress", metav1.DeleteOptions{}) },
			func() error {
				return nw.ServiceEntries("bookinfo").Delete(ctx, "ratings-remote", metav1.DeleteOptions{})
			},
			func() error { return nw.ServiceEntries("bookinfo").Delete(ctx, "external", metav1.DeleteOptions{}) },
			func() error {
				return nw.ServiceEntries("bookinfo").Delete(ctx, "secure-external", metav1.DeleteOptions{})
			},
			func() error {
				return nw.DestinationRules("bookinfo").Delete(ctx, "ratings-remote", metav1.DeleteOptions{})
			},
			func() error {
				return nw.DestinationRules("bookinfo").Delete(ctx, "egressgateway", metav1.DeleteOptions{})
			},
			func() error {
				return nw.VirtualServices("bookinfo").Delete(ctx, "api-external", metav1.DeleteOptions{})
			},
			func() error {
				return nw.VirtualServices("bookinfo").Delete(ctx, "mtls-external", metav1.DeleteOptions{})
			},
			func() error {
				return nw.VirtualServices("bookinfo").Delete(ctx, "secure-external", metav1.DeleteOptions{})
			},
			func() error {
				return sec.AuthorizationPolicies("bookinfo").Delete(ctx, "ratings-callers", metav1.DeleteOptions{})
			},
		} {
			if err := del(); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("clean up: %v", err)
			}
		}
	})
	e.apply("bookinfo", []byte(manifest))

	// Any address of the pods' network the capture takes to the outbound
	// listener of the port: the request's Host picks the route.
	anywhere := func(port int) string {
		return net.JoinHostPort(strings.TrimSuffix(host, ".1")+".254", strconv.Itoa(port))
	}
	expect := func(what string, c *http.Client, url string, ok func(code int, body string) bool) {
		t.Helper()
		e.waitFor(what, 2*time.Minute, func() (bool, string) {
			code, body, err := get(c, url)
			if err != nil {
				return false, err.Error()
			}
			return ok(code, body), fmt.Sprintf("%d %s", code, body[:min(len(body), 200)])
		})
	}

	t.Log("east-west: productpage → ingress gateway :15443 (AUTO_PASSTHROUGH by SNI) → ratings")
	expect("productpage reaches ratings through the AUTO_PASSTHROUGH gateway with its own identity",
		e.fromPod(productpage, anywhere(9080)), "http://ratings.remote.example:9080/ratings/0",
		func(code int, body string) bool { return code == http.StatusOK && strings.Contains(body, `"ratings"`) })
	expect("details, not in ratings' policy, refused by ratings through the same gateway",
		e.fromPod(details, anywhere(9080)), "http://ratings.remote.example:9080/ratings/0",
		func(code int, body string) bool { return code == http.StatusForbidden })

	t.Log("egress: productpage → egress gateway → external server on " + host)
	from := "from " + egress.Status.PodIP
	expect("HTTP through the egress gateway", e.fromPod(productpage, anywhere(80)), "http://api.external.example/",
		func(code int, body string) bool {
			return code == http.StatusOK && body == "external saw api.external.example "+from
		})
	expect("HTTP over mesh mTLS (ISTIO_MUTUAL) to the egress gateway", e.fromPod(productpage, anywhere(80)), "http://mtls.external.example/",
		func(code int, body string) bool {
			return code == http.StatusOK && body == "external saw mtls.external.example "+from
		})
	// The gateway's ISTIO_MUTUAL server: no mesh certificate, no request.
	direct := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{ServerName: "mtls.external.example", InsecureSkipVerify: true}}}
	if code, body, err := get(direct, "https://"+net.JoinHostPort(egress.Status.PodIP, "8443")+"/"); err == nil {
		t.Errorf("the egress gateway's ISTIO_MUTUAL server answered a client without a mesh certificate: %d %s", code, body)
	}

	e.waitFor("TLS passthrough through the egress gateway, the external server's certificate end to end", 2*time.Minute, func() (bool, string) {
		raw, err := e.rt.DialFromPod(ctx, productpage.UID, anywhere(443))
		if err != nil {
			return false, err.Error()
		}
		tc := tls.Client(raw, &tls.Config{ServerName: "secure.external.example", RootCAs: pool})
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return false, err.Error()
		}
		if sn := tc.ConnectionState().PeerCertificates[0].SerialNumber; sn.Cmp(serial) != 0 {
			return false, fmt.Sprintf("certificate serial %v, want the external server's %v", sn, serial)
		}
		if _, err := io.WriteString(tc, "hello\n"); err != nil {
			return false, err.Error()
		}
		line, err := bufio.NewReader(tc).ReadString('\n')
		want := "secure external saw hello " + from + "\n"
		return err == nil && line == want, fmt.Sprintf("%q %v, want %q", line, err, want)
	})
}

// externalCertificate is a self-signed certificate for name, with the pool
// trusting it and its serial number.
func externalCertificate(t *testing.T, name string) (tls.Certificate, *x509.CertPool, *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial := big.NewInt(time.Now().UnixNano())
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, serial
}
