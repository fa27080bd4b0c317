// Package tls builds Go TLS configurations from Envoy TLS contexts whose
// certificates and trust roots come from SDS secrets, resolved at handshake
// time so a rotated secret takes effect without rebuilding listeners or clusters.
package tls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"mesh.dev/mesh/internal/proxy/match"
	"mesh.dev/mesh/internal/proxy/protofields"
)

// Secrets looks up SDS secrets by name; nil when the secret has not arrived.
type Secrets interface {
	Secret(name string) *tlsv3.Secret
}

// source yields a certificate or a validation context, inline or from SDS.
type certSource struct {
	inline *tlsv3.TlsCertificate
	sds    string
	parsed atomic.Pointer[parsedCert] // the last inline certificate parsed, so a handshake does no PEM or key parsing
}

type caSource struct {
	inline *tlsv3.CertificateValidationContext
	sds    string
	parsed atomic.Pointer[parsedRoots]
}

// parsedCert and parsedRoots remember what one secret message parsed to. A
// rotated secret arrives as a new message, so the pointer is the cache key;
// sources read from files or the environment are read again every time,
// since their contents can change under the same message.
type parsedCert struct {
	from *tlsv3.TlsCertificate
	cert *tls.Certificate
	gen  uint64 // see generations; 0 for a source read from a file or the environment
}

type parsedRoots struct {
	from *tlsv3.CertificateValidationContext
	pool *x509.CertPool
	gen  uint64
}

// generations numbers each parse of a secret message, so a TLS session can
// record which certificate and roots it was established with; generation 1
// stands for "no trusted_ca".
var generations atomic.Uint64

func init() { generations.Store(1) }

var noRoots = &parsedRoots{gen: 1}

// inlineSource reports whether a DataSource's bytes are fixed by the message itself.
func inlineSource(d *corev3.DataSource) bool {
	switch d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes, *corev3.DataSource_InlineString:
		return true
	}
	return false
}

// verifier checks a peer chain against trust roots and SAN matchers.
type verifier struct {
	ca      caSource
	sans    []sanMatcher
	secrets Secrets
}

type sanMatcher struct {
	typ tlsv3.SubjectAltNameMatcher_SanType // 0 means any type
	m   *match.String
	// exactDNS is the name of an exact DNS matcher, which a wildcard DNS
	// SAN of the certificate (*.example.com) covers as in Envoy: one
	// label in place of the star.
	exactDNS string
}

// ClientConfig builds the upstream side of mTLS from an UpstreamTlsContext.
func ClientConfig(uc *tlsv3.UpstreamTlsContext, secrets Secrets, field string) (*tls.Config, error) {
	if err := protofields.Check(uc, field, "common_tls_context", "sni"); err != nil {
		return nil, err
	}
	common := uc.GetCommonTlsContext()
	minV, maxV, err := checkCommon(common, field+".common_tls_context")
	if err != nil {
		return nil, err
	}
	cert, err := certFrom(common, field+".common_tls_context")
	if err != nil {
		return nil, err
	}
	v, err := verifierFrom(common, secrets, field+".common_tls_context")
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		ServerName:         uc.GetSni(),
		InsecureSkipVerify: true, // verification is ours: SPIFFE SANs, not host names
		NextProtos:         common.GetAlpnProtocols(),
		MinVersion:         minV,
		MaxVersion:         maxV,
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert.load(secrets)
		}
	}
	if v != nil {
		cfg.VerifyPeerCertificate = v.verify
	}
	cfg.ClientSessionCache = &clientSessions{scope: contextScope(uc), secrets: secrets, cert: cert, v: v}
	return cfg, nil
}

// ServerConfig builds the downstream side from a DownstreamTlsContext.
func ServerConfig(dc *tlsv3.DownstreamTlsContext, secrets Secrets, field string) (*tls.Config, error) {
	if err := protofields.Check(dc, field, "common_tls_context", "require_client_certificate"); err != nil {
		return nil, err
	}
	common := dc.GetCommonTlsContext()
	minV, maxV, err := checkCommon(common, field+".common_tls_context")
	if err != nil {
		return nil, err
	}
	cert, err := certFrom(common, field+".common_tls_context")
	if err != nil {
		return nil, err
	}
	if cert == nil {
		return nil, fmt.Errorf("%s.common_tls_context: a server needs tls_certificates or tls_certificate_sds_secret_configs", field)
	}
	v, err := verifierFrom(common, secrets, field+".common_tls_context")
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		NextProtos: common.GetAlpnProtocols(),
		MinVersion: minV,
		MaxVersion: maxV,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cert.load(secrets)
		},
	}
	if dc.GetRequireClientCertificate().GetValue() {
		cfg.ClientAuth = tls.RequireAnyClientCert
	} else if v != nil {
		cfg.ClientAuth = tls.RequestClientCert
	}
	if v != nil {
		cfg.VerifyPeerCertificate = v.verify
	}
	t := &serverTickets{cfg: cfg, secrets: secrets, cert: cert, v: v}
	cfg.WrapSession, cfg.UnwrapSession = t.wrap, t.unwrap
	if len(cfg.NextProtos) > 0 {
		// Envoy completes a handshake whose ALPN offer has nothing in common
		// with its own, selecting no protocol; Go's server would abort it. Mesh
		// clients offer "istio-peer-exchange"/"istio" to h2/http1.1 listeners.
		noALPN := cfg.Clone()
		noALPN.NextProtos = nil
		cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			for _, p := range h.SupportedProtos {
				if slices.Contains(cfg.NextProtos, p) {
					return nil, nil
				}
			}
			return noALPN, nil
		}
	}
	return cfg, nil
}

// checkCommon refuses CommonTlsContext fields the proxy does not act on and
// returns the protocol versions tls_params asks for (TLS 1.2 to 1.3 by default).
func checkCommon(c *tlsv3.CommonTlsContext, field string) (minV, maxV uint16, err error) {
	minV, maxV = tls.VersionTLS12, tls.VersionTLS13
	if c == nil {
		return minV, maxV, nil
	}
	if err := protofields.Check(c, field, "tls_params", "tls_certificates", "tls_certificate_sds_secret_configs",
		"tls_certificate_provider_instance", "validation_context", "validation_context_sds_secret_config",
		"combined_validation_context", "alpn_protocols"); err != nil {
		return 0, 0, err
	}
	if p := c.GetTlsParams(); p != nil {
		if err := protofields.Check(p, field+".tls_params", "tls_minimum_protocol_version", "tls_maximum_protocol_version"); err != nil {
			return 0, 0, err
		}
		versions := map[tlsv3.TlsParameters_TlsProtocol]uint16{tlsv3.TlsParameters_TLSv1_0: tls.VersionTLS10,
			tlsv3.TlsParameters_TLSv1_1: tls.VersionTLS11, tlsv3.TlsParameters_TLSv1_2: tls.VersionTLS12, tlsv3.TlsParameters_TLSv1_3: tls.VersionTLS13}
		if v, ok := versions[p.GetTlsMinimumProtocolVersion()]; ok {
			minV = v
		}
		if v, ok := versions[p.GetTlsMaximumProtocolVersion()]; ok {
			maxV = v
		}
		if minV > maxV {
			return 0, 0, fmt.Errorf("%s.tls_params: minimum version above the maximum", field)
		}
	}
	for _, vc := range []*tlsv3.CertificateValidationContext{c.GetValidationContext(), c.GetCombinedValidationContext().GetDefaultValidationContext()} {
		if vc == nil {
			continue
		}
		if err := protofields.Check(vc, field+" validation context", "trusted_ca", "match_typed_subject_alt_names", "match_subject_alt_names"); err != nil {
			return 0, 0, err
		}
	}
	return minV, maxV, nil
}

func certFrom(c *tlsv3.CommonTlsContext, field string) (*certSource, error) {
	if n := len(c.GetTlsCertificates()); n > 0 {
		return &certSource{inline: c.GetTlsCertificates()[0]}, nil
	}
	if sds := c.GetTlsCertificateSdsSecretConfigs(); len(sds) > 0 {
		if err := checkSDS(sds[0], field+".tls_certificate_sds_secret_configs[0]"); err != nil {
			return nil, err
		}
		return &certSource{sds: sds[0].GetName()}, nil
	}
	if c.GetTlsCertificateProviderInstance() != nil {
		return nil, fmt.Errorf("%s.tls_certificate_provider_instance: not supported; use tls_certificate_sds_secret_configs", field)
	}
	return nil, nil
}

func checkSDS(s *tlsv3.SdsSecretConfig, field string) error {
	if s.GetName() == "" {
		return fmt.Errorf("%s.name: required", field)
	}
	if sc := s.GetSdsConfig(); sc != nil && sc.GetAds() == nil {
		return fmt.Errorf("%s.sds_config: only ads is supported (secrets arrive on the ADS stream)", field)
	}
	return nil
}

func verifierFrom(c *tlsv3.CommonTlsContext, secrets Secrets, field string) (*verifier, error) {
	v := &verifier{secrets: secrets}
	var vc *tlsv3.CertificateValidationContext
	switch t := c.GetValidationContextType().(type) {
	case nil:
		return nil, nil
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc = t.ValidationContext
		v.ca.inline = vc
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if err := checkSDS(t.ValidationContextSdsSecretConfig, field+".validation_context_sds_secret_config"); err != nil {
			return nil, err
		}
		v.ca.sds = t.ValidationContextSdsSecretConfig.GetName()
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		vc = t.CombinedValidationContext.GetDefaultValidationContext()
		sds := t.CombinedValidationContext.GetValidationContextSdsSecretConfig()
		if sds != nil {
			if err := checkSDS(sds, field+".combined_validation_context.validation_context_sds_secret_config"); err != nil {
				return nil, err
			}
			v.ca.sds = sds.GetName()
		} else {
			v.ca.inline = vc
		}
	default:
		return nil, fmt.Errorf("%s.validation_context_type: %T not supported", field, t)
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		sm, err := match.CompileString(m.GetMatcher(), fmt.Sprintf("%s.match_typed_subject_alt_names[%d].matcher", field, i))
		if err != nil {
			return nil, err
		}
		sm2 := sanMatcher{typ: m.GetSanType(), m: sm}
		if m.GetSanType() == tlsv3.SubjectAltNameMatcher_DNS {
			sm2.exactDNS = m.GetMatcher().GetExact()
		}
		v.sans = append(v.sans, sm2)
	}
	for i, m := range vc.GetMatchSubjectAltNames() { //nolint:staticcheck // still sent by control planes
		sm, err := match.CompileString(m, fmt.Sprintf("%s.match_subject_alt_names[%d]", field, i))
		if err != nil {
			return nil, err
		}
		v.sans = append(v.sans, sanMatcher{m: sm})
	}
	return v, nil
}

func (c *certSource) load(secrets Secrets) (*tls.Certificate, error) {
	p, err := c.current(secrets)
	if err != nil {
		return nil, err
	}
	return p.cert, nil
}

// current returns the certificate the source holds now, parsed once per secret message.
func (c *certSource) current(secrets Secrets) (*parsedCert, error) {
	tc := c.inline
	if c.sds != "" {
		s := secrets.Secret(c.sds)
		if s == nil || s.GetTlsCertificate() == nil {
			return nil, fmt.Errorf("SDS secret %q with a tls_certificate has not arrived", c.sds)
		}
		tc = s.GetTlsCertificate()
	}
	cacheable := inlineSource(tc.GetCertificateChain()) && inlineSource(tc.GetPrivateKey())
	if p := c.parsed.Load(); cacheable && p != nil && p.from == tc {
		return p, nil
	}
	chain, err := ReadSource(tc.GetCertificateChain())
	if err != nil {
		return nil, fmt.Errorf("certificate_chain: %w", err)
	}
	key, err := ReadSource(tc.GetPrivateKey())
	if err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		return nil, err
	}
	p := &parsedCert{from: tc, cert: &cert}
	if cacheable {
		p.gen = generations.Add(1)
		c.parsed.Store(p)
	}
	return p, nil
}

func (v *verifier) roots() (*x509.CertPool, error) {
	p, err := v.current()
	if err != nil {
		return nil, err
	}
	return p.pool, nil
}

// current returns the trust roots the verifier holds now, parsed once per secret message.
func (v *verifier) current() (*parsedRoots, error) {
	vc := v.ca.inline
	if v.ca.sds != "" {
		s := v.secrets.Secret(v.ca.sds)
		if s == nil || s.GetValidationContext() == nil {
			return nil, fmt.Errorf("SDS secret %q with a validation_context has not arrived", v.ca.sds)
		}
		vc = s.GetValidationContext()
	}
	if vc.GetTrustedCa() == nil {
		return noRoots, nil
	}
	cacheable := inlineSource(vc.GetTrustedCa())
	if p := v.ca.parsed.Load(); cacheable && p != nil && p.from == vc {
		return p, nil
	}
	pem, err := ReadSource(vc.GetTrustedCa())
	if err != nil {
		return nil, fmt.Errorf("trusted_ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("trusted_ca: no PEM certificates")
	}
	p := &parsedRoots{from: vc, pool: pool}
	if cacheable {
		p.gen = generations.Add(1)
		v.ca.parsed.Store(p)
	}
	return p, nil
}

func (v *verifier) verify(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return nil // a client that sent no certificate; RequireAnyClientCert decides
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("peer certificate: %w", err)
		}
		certs[i] = c
	}
	pool, err := v.roots()
	if err != nil {
		return err
	}
	if pool != nil {
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("peer certificate not trusted: %w", err)
		}
	}
	if len(v.sans) == 0 {
		return nil
	}
	leaf := certs[0]
	for _, sm := range v.sans {
		if sm.matches(leaf) {
			return nil
		}
	}
	return fmt.Errorf("peer certificate SANs %v match none of the allowed subject alt names", PeerIDs(leaf))
}

func (s sanMatcher) matches(c *x509.Certificate) bool {
	any := s.typ == tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED
	if any || s.typ == tlsv3.SubjectAltNameMatcher_URI {
		for _, u := range c.URIs {
			if s.m.Match(u.String()) {
				return true
			}
		}
	}
	if any || s.typ == tlsv3.SubjectAltNameMatcher_DNS {
		for _, d := range c.DNSNames {
			if s.m.Match(d) || (s.exactDNS != "" && wildcardCovers(d, s.exactDNS)) {
				return true
			}
		}
	}
	if any || s.typ == tlsv3.SubjectAltNameMatcher_IP_ADDRESS {
		for _, ip := range c.IPAddresses {
			if s.m.Match(ip.String()) {
				return true
			}
		}
	}
	return false
}

// wildcardCovers reports whether a certificate's wildcard DNS name
// (*.example.com) covers name: the star stands for exactly one label.
func wildcardCovers(pattern, name string) bool {
	rest, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return false
	}
	label, parent, ok := strings.Cut(name, ".")
	return ok && label != "" && strings.EqualFold(parent, rest)
}

// PeerIDs lists a certificate's URI SANs, then its DNS SANs.
func PeerIDs(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return append(out, c.DNSNames...)
}

// Principal returns the SPIFFE identity of a verified peer, "" when there is none.
func Principal(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			return u.String()
		}
	}
	return ""
}

// SpiffeNamespace extracts <ns> from spiffe://<trust-domain>/ns/<ns>/sa/<sa>.
func SpiffeNamespace(principal string) string {
	u, err := url.Parse(principal)
	if err != nil || u.Scheme != "spiffe" {
		return ""
	}
	var ns string
	if _, err := fmt.Sscanf(u.Path, "/ns/%s", &ns); err != nil {
		return ""
	}
	for i := 0; i < len(ns); i++ {
		if ns[i] == '/' {
			return ns[:i]
		}
	}
	return ns
}

// ReadSource returns the bytes of an Envoy DataSource.
func ReadSource(d *corev3.DataSource) ([]byte, error) {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_Filename:
		return os.ReadFile(s.Filename)
	case *corev3.DataSource_EnvironmentVariable:
		return []byte(os.Getenv(s.EnvironmentVariable)), nil
	default:
		return nil, errors.New("empty data source")
	}
}
