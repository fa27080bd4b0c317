package tls

import (
	"crypto"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/pilot/ca"
)

// secretMap is the Secrets a proxy's config store holds, swapped as SDS would.
type secretMap struct {
	mu sync.Mutex
	m  map[string]*tlsv3.Secret
}

func (s *secretMap) Secret(name string) *tlsv3.Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}

func (s *secretMap) set(sec *tlsv3.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[sec.GetName()] = sec
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func workloadSecret(t *testing.T, a *ca.Authority, sa string) *tlsv3.Secret {
	t.Helper()
	_, chain, key, err := a.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) {
		return a.SignWorkload(pub, ca.SPIFFEID("default", sa), time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	return &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline(chain), PrivateKey: inline(key)}}}
}

func rootSecret(a *ca.Authority) *tlsv3.Secret {
	return &tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inline(a.RootPEM())}}}
}

func newAuthority(t *testing.T) *ca.Authority {
	t.Helper()
	a, err := ca.NewSelfSigned("cluster.local", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func meshCommon() *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"}},
	}
}

// handshake runs one mTLS handshake over loopback and returns the principal each side saw.
func handshake(t *testing.T, client, server *tls.Config) (serverSaw, clientSaw string, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- ""
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		if tc.Handshake() != nil {
			done <- ""
			return
		}
		tc.Write([]byte("x")) // the TLS 1.3 client learns of a rejected certificate on its first read
		cs := tc.ConnectionState()
		done <- Principal(&cs)
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		defer c.Close()
		buf := make([]byte, 1)
		if _, err = c.Read(buf); err == nil {
			cs := c.ConnectionState()
			clientSaw = Principal(&cs)
		}
	}
	serverSaw = <-done
	return serverSaw, clientSaw, err
}

// Parsed certificates and roots are reused across handshakes, yet a secret
// SDS replaces is what the next handshake presents and trusts.
func TestRotatedSecretsTakeEffect(t *testing.T) {
	mesh := newAuthority(t)
	cs := &secretMap{m: map[string]*tlsv3.Secret{}}
	ss := &secretMap{m: map[string]*tlsv3.Secret{}}
	cs.set(workloadSecret(t, mesh, "sleep"))
	cs.set(rootSecret(mesh))
	ss.set(workloadSecret(t, mesh, "app"))
	ss.set(rootSecret(mesh))
	client, err := ClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: meshCommon()}, cs, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ServerConfig(&tlsv3.DownstreamTlsContext{CommonTlsContext: meshCommon(), RequireClientCertificate: wrapperspb.Bool(true)}, ss, "listener")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second handshake runs on what the first parsed
		s, c, err := handshake(t, client, server)
		if err != nil || s != ca.SPIFFEID("default", "sleep") || c != ca.SPIFFEID("default", "app") {
			t.Fatalf("handshake %d: server saw %q, client saw %q, err %v", i, s, c, err)
		}
	}
	ss.set(workloadSecret(t, mesh, "app-v2"))
	if _, c, err := handshake(t, client, server); err != nil || c != ca.SPIFFEID("default", "app-v2") {
		t.Fatalf("after the server's certificate rotated the client saw %q (err %v), want app-v2's", c, err)
	}
	// A new mesh root on the server: the client's certificate from the old CA is no longer trusted.
	ss.set(rootSecret(newAuthority(t)))
	if s, _, err := handshake(t, client, server); err == nil || s != "" {
		t.Fatalf("after the server's root rotated, the old CA's client was accepted as %q (err %v)", s, err)
	}
}
