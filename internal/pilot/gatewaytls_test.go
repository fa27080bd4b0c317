package pilot_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"mesh.dev/mesh/internal/freeport"
	"mesh.dev/mesh/internal/pilot"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/status"
	"mesh.dev/mesh/internal/proxy/agent"
	"mesh.dev/mesh/internal/proxy/identity"
)

// testCA is a certificate authority of the test's own, standing in for
// whoever issues a company's ingress certificates (cert-manager, a PKI).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

var serial atomic.Int64

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

// issue returns a leaf certificate for dns (a server) or a client, as PEM
// and as a tls.Certificate, with its serial number.
func (ca *testCA) issue(t *testing.T, dns string, client bool) (certPEM, keyPEM []byte, pair tls.Certificate, sn int64) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sn = serial.Add(1)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(sn), Subject: pkix.Name{CommonName: dns},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.DNSNames = []string{dns}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, pair, sn
}

// TestGatewayCredentialsFromSecrets runs pilot on the sandbox API server
// and a mesh-proxy gateway connected to it over mTLS xDS, and checks what a
// user of Istio's credentialName sees: HTTPS from a kubernetes.io/tls
// Secret; a rotated Secret served on new handshakes while established
// connections and a stream of new ones keep working; MUTUAL from an
// Opaque Secret and its NAME-cacert companion, accepting a client of that
// CA and refusing one of another; OPTIONAL_MUTUAL; and a server whose
// Secret is missing not served, reported on the Gateway's status, while
// the other servers on its port are.
func TestGatewayCredentialsFromSecrets(t *testing.T) {
	e := newEnv(t, 4*time.Minute)
	ctx, kube := e.ctx, e.kube
	istio := istioclient.NewForConfigOrDie(e.cfg)
	const ns = "gw-system"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The backend behind the gateway: a server on loopback, reached
	// through a ServiceEntry (an EndpointSlice may not hold 127.0.0.1).
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend saw host %s", r.Host)
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bl)
	defer backend.Close()
	backendPort := bl.Addr().(*net.TCPAddr).Port

	p := e.startPilot(&pilot.Options{Namespace: ns, Log: slog.New(slog.DiscardHandler)})
	secureXDS, err := p.Addr(ctx, "secure-xds")
	if err != nil {
		t.Fatal(err)
	}

	// Certificates: the ingress CA signs the servers' certificates; the
	// client CA signs the clients the MUTUAL server admits; the other CA
	// signs a client it must refuse.
	ingressCA, clientCA, otherCA := newTestCA(t, "ingress CA"), newTestCA(t, "client CA"), newTestCA(t, "other CA")
	appCert, appKey, _, firstSerial := ingressCA.issue(t, "app.example.com", false)
	mtlsCert, mtlsKey, _, _ := ingressCA.issue(t, "mtls.example.com", false)
	optCert, optKey, _, _ := ingressCA.issue(t, "optional.example.com", false)
	_, _, goodClient, _ := clientCA.issue(t, "good client", true)
	_, _, badClient, _ := otherCA.issue(t, "bad client", true)
	secrets := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "app-cert"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": appCert, "tls.key": appKey}},
		{ObjectMeta: metav1.ObjectMeta{Name: "mtls-cert"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"cert": mtlsCert, "key": mtlsKey}},
		{ObjectMeta: metav1.ObjectMeta{Name: "mtls-cert-cacert"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"cacert": clientCA.pem}},
		{ObjectMeta: metav1.ObjectMeta{Name: "optional-cert"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": optCert, "tls.key": optKey, "ca.crt": clientCA.pem}},
	}
	for _, s := range secrets {
		if _, err := kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	httpsPort, mtlsPort, optPort := uint32(freeport.T(t)), uint32(freeport.T(t)), uint32(freeport.T(t))
	for _, doc := range []string{
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "backend"},
  "spec": {"hosts": ["backend.example.internal"], "location": "MESH_EXTERNAL", "resolution": "STATIC",
    "ports": [{"number": %d, "name": "http", "protocol": "HTTP"}], "endpoints": [{"address": "127.0.0.1"}]}}`, backendPort),
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": {"name": "web"},
  "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
    {"port": {"number": %[1]d, "name": "https", "protocol": "HTTPS"}, "bind": "127.0.0.1", "hosts": ["app.example.com"],
     "tls": {"mode": "SIMPLE", "credentialName": "app-cert"}},
    {"port": {"number": %[1]d, "name": "https-broken", "protocol": "HTTPS"}, "bind": "127.0.0.1", "hosts": ["broken.example.com"],
     "tls": {"mode": "SIMPLE", "credentialName": "no-such-cert"}},
    {"port": {"number": %[2]d, "name": "https-mtls", "protocol": "HTTPS"}, "bind": "127.0.0.1", "hosts": ["mtls.example.com"],
     "tls": {"mode": "MUTUAL", "credentialName": "mtls-cert"}},
    {"port": {"number": %[3]d, "name": "https-optional", "protocol": "HTTPS"}, "bind": "127.0.0.1", "hosts": ["optional.example.com"],
     "tls": {"mode": "OPTIONAL_MUTUAL", "credentialName": "optional-cert"}}]}}`, httpsPort, mtlsPort, optPort),
		fmt.Sprintf(`{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "web"},
  "spec": {"hosts": ["app.example.com", "broken.example.com", "mtls.example.com", "optional.example.com"], "gateways": ["web"],
    "http": [{"route": [{"destination": {"host": "backend.example.internal", "port": {"number": %d}}}]}]}}`, backendPort),
	} {
		if err := e.applyYAML(doc, ns); err != nil {
			t.Fatal(err)
		}
	}

	// The gateway workload: its pod (pilot matches the Gateway's selector
	// against its labels) and a mesh-proxy with the pod's identity.
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ingress"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ingress-0", Labels: map[string]string{"istio": "ingressgateway"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "ingress", Containers: []corev1.Container{{Name: "istio-proxy", Image: "mesh/proxy:test"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "ingress", &authnv1.TokenRequest{}, metav1.CreateOptions{})
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
	node := model.NodeID(model.Router, "198.18.250.1", "ingress-0", ns)
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

	// get makes one request on a new connection to the gateway with SNI
	// host, returning the body and the certificate the gateway presented.
	get := func(port uint32, host string, clientCert *tls.Certificate) (string, *x509.Certificate, error) {
		cfg := &tls.Config{ServerName: host, RootCAs: ingressCA.pool}
		if clientCert != nil {
			cfg.Certificates = []tls.Certificate{*clientCert}
		}
		var leaf *x509.Certificate
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { leaf = cs.PeerCertificates[0]; return nil }
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/", port), nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			return "", leaf, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", leaf, fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return string(b), leaf, nil
	}
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

	eventually("HTTPS through the gateway with the kubernetes.io/tls Secret", func() error {
		body, leaf, err := get(httpsPort, "app.example.com", nil)
		if err != nil {
			return err
		}
		if !strings.Contains(body, "backend saw host app.example.com") || leaf.SerialNumber.Int64() != firstSerial {
			return fmt.Errorf("body %q, certificate serial %v", body, leaf.SerialNumber)
		}
		return nil
	})
	res, err := p.Server.Resources(node)
	if err != nil {
		t.Fatal(err)
	}
	sds := strings.Join(res.Names(resourcev3.SecretType), " ")
	for _, want := range []string{"kubernetes://app-cert", "kubernetes://mtls-cert", "kubernetes://mtls-cert-cacert", "kubernetes://optional-cert", "kubernetes://optional-cert-cacert"} {
		if !strings.Contains(sds+" ", want+" ") {
			t.Errorf("SDS secrets sent to the gateway: %s; want %s", sds, want)
		}
	}

	t.Run("a plaintext stream claiming the gateway's node id is refused", func(t *testing.T) {
		plainAddr, _ := p.Addr(ctx, "xds")
		conn, err := grpc.NewClient(plainAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		impostor := &pilottest.ADSClient{NodeID: node}
		err = impostor.Start(wctx, conn)
		if err == nil {
			err = impostor.WaitFor(wctx, func(c *pilottest.ADSClient) bool { return c.Count(resourcev3.ClusterType) > 0 })
		}
		if err == nil || !strings.Contains(err.Error(), "already connected on pilot's other xDS port") {
			t.Errorf("plaintext stream with the mTLS gateway's node id: %v, want refused", err)
		}
	})

	t.Run("missing Secret: that server only is not served, and the Gateway says why", func(t *testing.T) {
		if _, _, err := get(httpsPort, "broken.example.com", nil); err == nil {
			t.Error("the server whose Secret does not exist answered; want no TLS handshake for it")
		}
		if _, _, err := get(httpsPort, "app.example.com", nil); err != nil {
			t.Errorf("the server on the same port with a good Secret: %v", err)
		}
		eventually("Gateway status names the missing Secret", func() error {
			gw, err := istio.NetworkingV1().Gateways(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			return credentialCondition(gw, `spec.servers[1].tls.credentialName "no-such-cert"`, "no Secret gw-system/no-such-cert")
		})
	})

	t.Run("MUTUAL: a client of the CA in NAME-cacert is admitted, one of another CA is refused", func(t *testing.T) {
		eventually("mTLS with a client certificate of the client CA", func() error {
			_, _, err := get(mtlsPort, "mtls.example.com", &goodClient)
			return err
		})
		if _, _, err := get(mtlsPort, "mtls.example.com", &badClient); err == nil {
			t.Error("a client certificate of another CA was admitted")
		}
		if _, _, err := get(mtlsPort, "mtls.example.com", nil); err == nil {
			t.Error("a client without a certificate was admitted to a MUTUAL server")
		}
	})

	t.Run("OPTIONAL_MUTUAL: no certificate or a good one admitted, a bad one refused", func(t *testing.T) {
		eventually("OPTIONAL_MUTUAL without a client certificate", func() error {
			_, _, err := get(optPort, "optional.example.com", nil)
			return err
		})
		if _, _, err := get(optPort, "optional.example.com", &goodClient); err != nil {
			t.Errorf("with the client CA's certificate: %v", err)
		}
		if _, _, err := get(optPort, "optional.example.com", &badClient); err == nil {
			t.Error("a client certificate of another CA was admitted")
		}
	})

	t.Run("rotation: new handshakes get the new certificate, established connections and new ones never fail", func(t *testing.T) {
		// An established connection, kept alive across the rotation.
		keep := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "app.example.com", RootCAs: ingressCA.pool}}}
		url := fmt.Sprintf("https://127.0.0.1:%d/", httpsPort)
		var conns atomic.Int32
		do := func() error {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Host = "app.example.com"
			req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
				if !ci.Reused {
					conns.Add(1)
				}
			}}))
			resp, err := keep.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		if err := do(); err != nil {
			t.Fatal(err)
		}
		// Load: new connections, one after another, during the rotation.
		var failures, requests atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				requests.Add(1)
				if _, _, err := get(httpsPort, "app.example.com", nil); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
		newCert, newKey, _, newSerial := ingressCA.issue(t, "app.example.com", false)
		s, err := kube.CoreV1().Secrets(ns).Get(ctx, "app-cert", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.Data = map[string][]byte{"tls.crt": newCert, "tls.key": newKey}
		if _, err := kube.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually("a new handshake presents the rotated certificate", func() error {
			_, leaf, err := get(httpsPort, "app.example.com", nil)
			if err != nil {
				return err
			}
			if leaf.SerialNumber.Int64() != newSerial {
				return fmt.Errorf("serial %v, want %d", leaf.SerialNumber, newSerial)
			}
			return nil
		})
		close(stop)
		wg.Wait()
		if n := failures.Load(); n > 0 {
			t.Errorf("%d of %d requests on new connections failed during the rotation; first: %v", n, requests.Load(), firstErr.Load())
		}
		if err := do(); err != nil {
			t.Errorf("the connection established before the rotation: %v", err)
		}
		if conns.Load() != 1 {
			t.Errorf("the kept-alive client made %d connections, want the one from before the rotation", conns.Load())
		}
	})
}

// credentialCondition checks the Gateway's credential condition and its
// IST0161 validation message.
func credentialCondition(gw *networkingv1.Gateway, wants ...string) error {
	var cond string
	for _, c := range gw.Status.Conditions {
		if c.Type == status.CredentialCondition && c.Status == "False" {
			cond = c.Message
		}
	}
	for _, w := range wants {
		if !strings.Contains(cond, w) {
			return fmt.Errorf("condition %s: %q, want it to contain %q", status.CredentialCondition, cond, w)
		}
	}
	for _, m := range gw.Status.ValidationMessages {
		if m.GetType().GetCode() == "IST0161" {
			return nil
		}
	}
	return fmt.Errorf("no IST0161 validation message in %v", gw.Status.ValidationMessages)
}
