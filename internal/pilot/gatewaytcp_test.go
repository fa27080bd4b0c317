package pilot_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"mesh.dev/mesh/internal/freeport"
	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/proxy/agent"
	"mesh.dev/mesh/internal/proxy/identity"
)

// echoLine serves one line per connection on loopback, answering
// "NAME saw LINE", over TLS with cert when given; it returns its port.
func echoLine(t *testing.T, name string, cert *tls.Certificate) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if cert != nil {
					c = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*cert}})
				}
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					fmt.Fprintf(c, "%s saw %s", name, line)
				}
			}(c)
		}
	}()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// TestGatewayPassthroughTCPAndOriginationOnTheAPIServer runs pilot on the
// sandbox API server and a mesh-proxy gateway connected to it over mTLS
// xDS, configured only through the API server, and checks what a user
// sees: a PASSTHROUGH server hands the TLS connection, by its SNI, to a
// backend whose own certificate the client sees; a TCP server proxies by
// its tcp route; and a route to an external host whose DestinationRule
// says MUTUAL with credentialName leaves the gateway with the client
// certificate of that Secret (the egress gateway's TLS origination), and
// the Secret's new certificate once it is rotated.
func TestGatewayPassthroughTCPAndOriginationOnTheAPIServer(t *testing.T) {
	e := newEnv(t, 4*time.Minute)
	ctx, kube := e.ctx, e.kube
	const ns = "edge-system"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	serverCA, clientCA := newTestCA(t, "server CA"), newTestCA(t, "client CA")
	_, _, passCert, passSerial := serverCA.issue(t, "pass.example.com", false)
	passPort := echoLine(t, "passthrough backend", &passCert)
	tcpPort := echoLine(t, "tcp backend", nil)
	_, _, extCert, _ := serverCA.issue(t, "api.external.example", false)
	ext := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // each request a new handshake from the gateway
		fmt.Fprintf(w, "external saw %s from %s", r.Host, r.TLS.PeerCertificates[0].Subject.CommonName)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{extCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.pool}}
	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ext.ServeTLS(el, "", "")
	defer ext.Close()
	extPort := el.Addr().(*net.TCPAddr).Port
	clientCertPEM, clientKeyPEM, _, _ := clientCA.issue(t, "gateway client", true)
	credential := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "client-credential"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": clientCertPEM, "tls.key": clientKeyPEM, "ca.crt": serverCA.pem}}
	if _, err := kube.CoreV1().Secrets(ns).Create(ctx, credential, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	p := e.startPilot(&pilot.Options{Namespace: ns, Log: slog.New(slog.DiscardHandler)})
	secureXDS, err := p.Addr(ctx, "secure-xds")
	if err != nil {
		t.Fatal(err)
	}

	gwPass, gwTCP, gwHTTP := uint32(freeport.T(t)), uint32(freeport.T(t)), uint32(freeport.T(t))
	for _, doc := range []string{
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "backends"},
  "spec": {"hosts": ["pass.backend.internal"], "location": "MESH_EXTERNAL", "resolution": "STATIC",
    "ports": [{"number": %d, "name": "tls", "protocol": "TLS"}], "endpoints": [{"address": "127.0.0.1"}]}}`, passPort),
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "tcp-backend"},
  "spec": {"hosts": ["tcp.backend.internal"], "location": "MESH_EXTERNAL", "resolution": "STATIC",
    "ports": [{"number": %d, "name": "tcp", "protocol": "TCP"}], "endpoints": [{"address": "127.0.0.1"}]}}`, tcpPort),
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "external-api"},
  "spec": {"hosts": ["api.external.example"], "location": "MESH_EXTERNAL", "resolution": "STATIC",
    "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}, {"number": 443, "name": "https", "protocol": "HTTPS", "targetPort": %d}],
    "endpoints": [{"address": "127.0.0.1"}]}}`, extPort),
		`{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "originate-mtls"},
  "spec": {"host": "api.external.example", "exportTo": ["."], "trafficPolicy": {"portLevelSettings": [
    {"port": {"number": 443}, "tls": {"mode": "MUTUAL", "credentialName": "client-credential"}}]}}}`,
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "edge"},
  "spec": {"selector": {"istio": "egressgateway"}, "servers": [
    {"port": {"number": %d, "name": "tls", "protocol": "TLS"}, "bind": "127.0.0.1", "hosts": ["*.example.com"], "tls": {"mode": "PASSTHROUGH"}},
    {"port": {"number": %d, "name": "tcp", "protocol": "TCP"}, "bind": "127.0.0.1", "hosts": ["*"]},
    {"port": {"number": %d, "name": "http", "protocol": "HTTP"}, "bind": "127.0.0.1", "hosts": ["api.external.example"]}]}}`, gwPass, gwTCP, gwHTTP),
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "edge"},
  "spec": {"hosts": ["*.example.com"], "gateways": ["edge"],
    "tls": [{"match": [{"port": %d, "sniHosts": ["pass.example.com"]}], "route": [{"destination": {"host": "pass.backend.internal"}}]}]}}`, gwPass),
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "edge-tcp"},
  "spec": {"hosts": ["*"], "gateways": ["edge"],
    "tcp": [{"match": [{"port": %d}], "route": [{"destination": {"host": "tcp.backend.internal"}}]}]}}`, gwTCP),
		`{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "external-api"},
  "spec": {"hosts": ["api.external.example"], "gateways": ["edge"],
    "http": [{"route": [{"destination": {"host": "api.external.example", "port": {"number": 443}}}]}]}}`,
	} {
		if err := e.applyYAML(doc, ns); err != nil {
			t.Fatal(err)
		}
	}

	// The gateway workload: its pod and a mesh-proxy with its identity.
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "egress"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "egress-0", Labels: map[string]string{"istio": "egressgateway"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "egress", Containers: []corev1.Container{{Name: "istio-proxy", Image: "mesh/proxy:test"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "egress", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile, rootFile := filepath.Join(dir, "istio-token"), filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootFile, p.CA.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := identity.New(identity.Config{CAAddress: secureXDS.String(), ServerName: "mesh-pilot." + ns + ".svc", RootCertFile: rootFile,
		TokenFile: tokenFile, TTL: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	node := model.NodeID(model.Router, "198.18.250.2", "egress-0", ns)
	px, err := agent.New(agent.Options{XDSAddress: secureXDS.String(), XDSMTLS: true, Identity: id, NodeID: node, AdminAddress: "127.0.0.1:0",
		XDSBackoff: [2]time.Duration{50 * time.Millisecond, 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	pxCtx, stopProxy := context.WithCancel(ctx)
	defer stopProxy()
	if err := px.Start(pxCtx); err != nil {
		t.Fatal(err)
	}
	defer px.Close()

	eventually := func(what string, f func() error) {
		t.Helper()
		var last error
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			last = f()
			return last == nil, nil
		}); err != nil {
			t.Fatalf("%s: %v (last: %v)", what, err, last)
		}
	}
	line := func(conn net.Conn) (string, error) {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "hello\n"); err != nil {
			return "", err
		}
		s, err := bufio.NewReader(conn).ReadString('\n')
		return strings.TrimSpace(s), err
	}
	eventually("TLS passthrough by SNI, the backend's certificate end to end", func() error {
		raw, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", gwPass), 5*time.Second)
		if err != nil {
			return err
		}
		tc := tls.Client(raw, &tls.Config{ServerName: "pass.example.com", RootCAs: serverCA.pool})
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return err
		}
		if sn := tc.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); sn != passSerial {
			tc.Close()
			return fmt.Errorf("certificate serial %d, want the backend's %d", sn, passSerial)
		}
		got, err := line(tc)
		if err == nil && got != "passthrough backend saw hello" {
			err = fmt.Errorf("answer %q", got)
		}
		return err
	})
	eventually("TCP by the tcp route", func() error {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", gwTCP), 5*time.Second)
		if err != nil {
			return err
		}
		got, err := line(conn)
		if err == nil && got != "tcp backend saw hello" {
			err = fmt.Errorf("answer %q", got)
		}
		return err
	})
	want := "gateway client"
	originate := func() error {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", gwHTTP), nil)
		req.Host = "api.external.example"
		resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "external saw api.external.example from "+want {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return nil
	}
	eventually("mutual TLS origination with the Secret's client certificate", originate)

	// Rotation: a new client certificate in the Secret is the one the
	// next upstream handshake presents, with no restart.
	rotatedPEM, rotatedKey, _, _ := clientCA.issue(t, "gateway client rotated", true)
	credential.Data["tls.crt"], credential.Data["tls.key"] = rotatedPEM, rotatedKey
	if _, err := kube.CoreV1().Secrets(ns).Update(ctx, credential, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want = "gateway client rotated"
	eventually("origination with the rotated client certificate", originate)
}
