package tls

import (
	"crypto/tls"
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// tls_params versions are applied; TLS fields the proxy does not act on are refused by name.
func TestTLSParamsAndUnhonouredFields(t *testing.T) {
	uc := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsParams: &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_3}}}
	cfg, err := ClientConfig(uc, nil, "cluster \"c\".transport_socket")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Errorf("min version %x, want TLS 1.3 from tls_params", cfg.MinVersion)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{func() error {
			_, err := ClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsParams: &tlsv3.TlsParameters{CipherSuites: []string{"ECDHE-RSA-AES128-GCM-SHA256"}}}}, nil, "up")
			return err
		}(), "up.common_tls_context.tls_params: field cipher_suites is not supported"},
		{func() error {
			_, err := ClientConfig(&tlsv3.UpstreamTlsContext{MaxSessionKeys: wrapperspb.UInt32(1)}, nil, "up")
			return err
		}(), "up: field max_session_keys is not supported"},
		{func() error {
			_, err := ServerConfig(&tlsv3.DownstreamTlsContext{RequireSni: wrapperspb.Bool(true)}, nil, "down")
			return err
		}(), "down: field require_sni is not supported"},
		{func() error {
			_, err := ClientConfig(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
				ValidationContext: &tlsv3.CertificateValidationContext{VerifyCertificateSpki: []string{"x"}}}}}, nil, "up")
			return err
		}(), "field verify_certificate_spki is not supported"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want %q", tc.err, tc.want)
		}
	}
}
