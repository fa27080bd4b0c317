// Package ca is pilot's certificate authority: it keeps a root (self-signed,
// or supplied by the user), signs short-lived workload certificates with
// SPIFFE identities for callers authenticated by their ServiceAccount token,
// and publishes the root to every namespace.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// TrustDomain is the SPIFFE trust domain of the mesh.
const TrustDomain = "cluster.local"

// SPIFFEID is the identity of a service account.
func SPIFFEID(ns, sa string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", TrustDomain, ns, sa)
}

// Authority signs certificates with a CA key.
type Authority struct {
	cert     *x509.Certificate
	key      crypto.Signer
	certPEM  []byte
	keyPEM   []byte
	chainPEM []byte // intermediates between cert and the root, for a plugged-in CA
	rootPEM  []byte // the trust anchor proxies verify against
	now      func() time.Time
}

// NewSelfSigned creates a self-signed root valid for ttl.
func NewSelfSigned(org string, ttl time.Duration) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{org}, CommonName: "mesh root CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign root: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return FromPEM(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil, nil)
}

// FromPEM loads a CA from its certificate and key, with optional
// intermediate chain and root (rootPEM defaults to the certificate itself).
func FromPEM(certPEM, keyPEM, chainPEM, rootPEM []byte) (*Authority, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate and key: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate: basicConstraints CA:TRUE is not set; it cannot sign certificates")
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("CA key of type %T cannot sign", pair.PrivateKey)
	}
	if len(rootPEM) == 0 {
		rootPEM = certPEM
	}
	if p, _ := pem.Decode(rootPEM); p == nil {
		return nil, errors.New("root certificate: no PEM block found")
	}
	return &Authority{cert: cert, key: signer, certPEM: certPEM, keyPEM: keyPEM, chainPEM: chainPEM, rootPEM: rootPEM, now: time.Now}, nil
}

// RootPEM is the trust anchor to distribute to workloads.
func (a *Authority) RootPEM() []byte { return append([]byte(nil), a.rootPEM...) }

// CertPEM and KeyPEM are the signing certificate and key, for storing a
// self-signed root.
func (a *Authority) CertPEM() []byte { return a.certPEM }

// KeyPEM is the signing key in PEM.
func (a *Authority) KeyPEM() []byte { return a.keyPEM }

// SignWorkload signs pub for the SPIFFE identity id, valid for ttl, and
// returns the chain PEM (leaf, intermediates).
func (a *Authority) SignWorkload(pub crypto.PublicKey, id string, ttl time.Duration) ([]byte, error) {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "spiffe" {
		return nil, fmt.Errorf("identity %q is not a spiffe:// URI", id)
	}
	now := a.now()
	notAfter := now.Add(ttl)
	if notAfter.After(a.cert.NotAfter) {
		notAfter = a.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
	return a.sign(tmpl, pub)
}

// SignServing signs pub for host names and IP addresses: pilot's own
// serving certificate.
func (a *Authority) SignServing(pub crypto.PublicKey, hosts []string, ttl time.Duration) ([]byte, error) {
	if len(hosts) == 0 {
		return nil, errors.New("serving certificate: no host names")
	}
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return a.sign(tmpl, pub)
}

// ServingCertificate issues a fresh key pair for hosts, for a TLS server.
func (a *Authority) ServingCertificate(hosts []string, ttl time.Duration) (tls.Certificate, error) {
	pair, _, _, err := a.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) { return a.SignServing(pub, hosts, ttl) })
	return pair, err
}

func (a *Authority) sign(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if a.cert.Subject.String() != a.cert.Issuer.String() || len(a.chainPEM) > 0 {
		// An intermediate CA: the chain must lead the verifier to the root.
		out = append(out, a.certPEM...)
		out = append(out, a.chainPEM...)
	}
	return out, nil
}

// NewKeyPair issues a fresh key and a certificate for it, returning a
// tls.Certificate and the PEM forms.
func (a *Authority) NewKeyPair(sign func(crypto.PublicKey) ([]byte, error)) (tls.Certificate, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	chain, err := sign(key.Public())
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	pair, err := tls.X509KeyPair(chain, keyPEM)
	return pair, chain, keyPEM, err
}

// RootPool is a pool holding the root, for verifying peers.
func (a *Authority) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(a.rootPEM)
	return p
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}
