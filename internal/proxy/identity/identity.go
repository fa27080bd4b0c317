// Package identity is the agent's workload certificate duty: it proves the
// workload's ServiceAccount to mesh-pilot's certificate service with the
// projected token, sends a CSR for a fresh key, keeps the SPIFFE certificate
// it gets back, and renews it at half its life. The certificate serves as
// the client certificate of the xDS connection on pilot's mTLS port and as
// the workload's mesh identity ("default" and "ROOTCA") when pilot sends no
// SDS secrets of its own.
package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	securityapi "istio.io/api/security/v1alpha1"
)

// Secret names Istio's sidecars use for the workload certificate and the mesh root.
const (
	WorkloadSecret = "default"
	RootSecret     = "ROOTCA"
)

// Config says where the CA is and how the workload proves who it is.
type Config struct {
	CAAddress    string        // host:port of pilot's certificate service (its mTLS port, 15012)
	ServerName   string        // name pilot's serving certificate carries; default: CAAddress's host
	RootCertFile string        // PEM trust anchor for pilot's serving certificate (the mesh root)
	TokenFile    string        // projected ServiceAccount token; read again for every request, as the kubelet rotates it
	TTL          time.Duration // validity asked for (the CA may give less); default 24h
	Log          *slog.Logger
}

// Cert is one issued workload certificate with its key.
type Cert struct {
	TLS      tls.Certificate
	Leaf     *x509.Certificate
	SPIFFE   string
	ChainPEM []byte // leaf first, then intermediates
	KeyPEM   []byte
	RootPEM  []byte
	Received time.Time

	secrets map[string]*tlsv3.Secret
}

// Manager fetches and rotates the workload certificate.
type Manager struct {
	cfg     Config
	roots   *x509.CertPool
	rootPEM []byte
	conn    *grpc.ClientConn
	client  securityapi.IstioCertificateServiceClient
	cur     atomic.Pointer[Cert]
	ready   chan struct{}
	once    sync.Once
	now     func() time.Time
	mu      sync.Mutex
	subs    []func(*Cert)
}

// New checks the configuration and prepares the connection (nothing is sent until Fetch or Run).
func New(cfg Config) (*Manager, error) {
	if cfg.CAAddress == "" {
		return nil, errors.New("CA address is empty")
	}
	host, _, err := net.SplitHostPort(cfg.CAAddress)
	if err != nil {
		return nil, fmt.Errorf("CA address %q: want host:port: %w", cfg.CAAddress, err)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.TTL == 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	rootPEM, err := os.ReadFile(cfg.RootCertFile)
	if err != nil {
		return nil, fmt.Errorf("mesh root certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("mesh root certificate %s: no PEM CERTIFICATE block", cfg.RootCertFile)
	}
	if _, err := os.Stat(cfg.TokenFile); err != nil {
		return nil, fmt.Errorf("ServiceAccount token: %w", err)
	}
	m := &Manager{cfg: cfg, roots: roots, rootPEM: rootPEM, ready: make(chan struct{}), now: time.Now}
	// The certificate service is reached without a client certificate: that is how a workload gets its first one.
	conn, err := grpc.NewClient(cfg.CAAddress, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12,
	})), grpc.WithConnectParams(grpc.ConnectParams{
		// The channel's own redials follow the request retries below (gRPC's
		// default waits up to 120 s, failing every request meanwhile).
		Backoff:           backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 30 * time.Second},
		MinConnectTimeout: 10 * time.Second,
	}))
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", cfg.CAAddress, err)
	}
	m.conn, m.client = conn, securityapi.NewIstioCertificateServiceClient(conn)
	return m, nil
}

// Close releases the connection to the CA.
func (m *Manager) Close() error { return m.conn.Close() }

// Current returns the certificate in use; nil before the first one arrives.
func (m *Manager) Current() *Cert { return m.cur.Load() }

// Ready is closed once the first certificate has arrived.
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// OnRotate registers f to run with every new certificate.
func (m *Manager) OnRotate(f func(*Cert)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs = append(m.subs, f)
}

// Fetch asks the CA for a certificate for a fresh key and installs it.
func (m *Manager) Fetch(ctx context.Context) (*Cert, error) {
	tok, err := os.ReadFile(m.cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("ServiceAccount token: %w", err)
	}
	token := strings.TrimSpace(string(tok))
	if token == "" {
		return nil, fmt.Errorf("ServiceAccount token %s is empty", m.cfg.TokenFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	// No SAN in the request: the CA puts in the identity the token proves, which is the only one it would sign anyway.
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	cctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	resp, err := m.client.CreateCertificate(cctx, &securityapi.IstioCertificateRequest{Csr: string(csr), ValidityDuration: int64(m.cfg.TTL / time.Second)})
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", m.cfg.CAAddress, err)
	}
	c, err := m.build(key, resp.GetCertChain())
	if err != nil {
		return nil, fmt.Errorf("CA %s answered with an unusable certificate: %w", m.cfg.CAAddress, err)
	}
	m.install(c)
	return c, nil
}

// build checks the issued chain against the mesh root and assembles the Cert.
func (m *Manager) build(key *ecdsa.PrivateKey, chain []string) (*Cert, error) {
	if len(chain) == 0 {
		return nil, errors.New("empty certificate chain")
	}
	var certs []*x509.Certificate
	var chainPEM []byte
	for i, p := range chain {
		b, _ := pem.Decode([]byte(p))
		if b == nil || b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("cert_chain[%d]: not a PEM certificate", i)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("cert_chain[%d]: %w", i, err)
		}
		// The chain ends with the root; peers have it already.
		if i > 0 && c.IsCA && string(c.RawSubject) == string(c.RawIssuer) {
			continue
		}
		certs = append(certs, c)
		chainPEM = append(chainPEM, pem.EncodeToMemory(b)...)
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("does not chain to the mesh root: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("certificate is not for the key the CSR carried")
	}
	spiffe := ""
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" {
			spiffe = u.String()
		}
	}
	if spiffe == "" {
		return nil, errors.New("certificate has no spiffe:// URI SAN")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	c := &Cert{TLS: pair, Leaf: leaf, SPIFFE: spiffe, ChainPEM: chainPEM, KeyPEM: keyPEM, RootPEM: m.rootPEM, Received: m.now()}
	c.secrets = map[string]*tlsv3.Secret{
		WorkloadSecret: {Name: WorkloadSecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: chainPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
		}}},
		RootSecret: {Name: RootSecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: m.rootPEM}},
		}}},
	}
	return c, nil
}

func (m *Manager) install(c *Cert) {
	m.cur.Store(c)
	m.once.Do(func() { close(m.ready) })
	m.mu.Lock()
	subs := append([]func(*Cert){}, m.subs...)
	m.mu.Unlock()
	for _, f := range subs {
		f(c)
	}
}

// renewAt is when a certificate is replaced: at half its life, as Istio's
// agent does by default. The life is counted from when it arrived, since CAs
// backdate NotBefore to absorb clock skew.
func renewAt(c *Cert) time.Time {
	return c.Received.Add(c.Leaf.NotAfter.Sub(c.Received) / 2)
}

// Run fetches the first certificate and renews each at half its life until
// ctx ends. A failed request is retried with backoff; the current
// certificate stays in use meanwhile.
func (m *Manager) Run(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for {
		var wait time.Duration
		c, err := m.Fetch(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
			if cur := m.Current(); cur != nil {
				// Never wait past the current certificate's expiry for the next try.
				wait = min(wait, max(cur.Leaf.NotAfter.Sub(m.now())/4, 100*time.Millisecond))
			}
			m.cfg.Log.Warn("workload certificate request failed; retrying", "ca", m.cfg.CAAddress, "in", wait, "err", err)
		default:
			backoff = 500 * time.Millisecond
			wait = renewAt(c).Sub(m.now())
			m.cfg.Log.Info("workload certificate issued", "identity", c.SPIFFE, "expires", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "renew_in", wait.Round(time.Second))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// ClientTLS is the TLS configuration for pilot's mTLS port: pilot verified
// against the mesh root, the current workload certificate presented (read
// at every handshake, so a reconnect after rotation presents the new one).
func (m *Manager) ClientTLS() *tls.Config {
	return &tls.Config{
		RootCAs: m.roots, ServerName: m.cfg.ServerName, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := m.Current(); c != nil {
				return &c.TLS, nil
			}
			return &tls.Certificate{}, nil
		},
	}
}

// Secret returns the workload certificate as the SDS secrets Istio's
// sidecars use ("default" and "ROOTCA"); nil for other names or before the
// first certificate.
func (m *Manager) Secret(name string) *tlsv3.Secret {
	if c := m.Current(); c != nil {
		return c.secrets[name]
	}
	return nil
}
