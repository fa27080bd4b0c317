package ca

import (
	"crypto"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// SecretCache issues the SDS secrets pilot pushes to proxies ("default",
// the workload certificate, and "ROOTCA") and reissues a certificate once
// half its lifetime has passed.
type SecretCache struct {
	CA  *Authority
	TTL time.Duration

	mu      sync.Mutex
	entries map[string]*secretEntry // by ns/sa
	now     func() time.Time
}

type secretEntry struct {
	secrets []*tlsv3.Secret
	issued  time.Time
	expires time.Time
}

// WorkloadSecrets returns the secrets for service account sa in ns.
func (c *SecretCache) WorkloadSecrets(ns, sa string) ([]*tlsv3.Secret, error) {
	now := c.clock()
	key := ns + "/" + sa
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil && !e.dueForRotation(now) {
		return e.secrets, nil
	}
	_, chain, keyPEM, err := c.CA.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) {
		return c.CA.SignWorkload(pub, SPIFFEID(ns, sa), c.TTL)
	})
	if err != nil {
		return nil, err
	}
	inline := func(b []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
	}
	e := &secretEntry{issued: now, expires: now.Add(c.TTL), secrets: []*tlsv3.Secret{
		{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(chain), PrivateKey: inline(keyPEM),
		}}},
		{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(c.CA.RootPEM()),
		}}},
	}}
	if c.entries == nil {
		c.entries = map[string]*secretEntry{}
	}
	c.entries[key] = e
	return e.secrets, nil
}

func (e *secretEntry) dueForRotation(now time.Time) bool {
	return now.After(e.issued.Add(e.expires.Sub(e.issued) / 2))
}

// DueForRotation reports whether some issued certificate should be
// reissued: the caller then regenerates proxies' config, which picks up
// fresh certificates through WorkloadSecrets.
func (c *SecretCache) DueForRotation() bool {
	now := c.clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.dueForRotation(now) {
			return true
		}
	}
	return false
}

func (c *SecretCache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
