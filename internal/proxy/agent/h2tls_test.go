package agent

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// TestHTTP2OverTLSWithInlineCertificate serves a gateway-style TLS listener
// (certificate inline, ALPN h2) and checks the client speaks HTTP/2 to it.
func TestHTTP2OverTLSWithInlineCertificate(t *testing.T) {
	app := startUpstream(t, "app", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "via "+r.Header.Get("X-Forwarded-Proto"))
	})
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "istio-system", "ingressgateway")
	port := freePort(t)
	l := inlineListener(t, port, []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("app")}}}})
	dtc := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2", "http/1.1"},
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
		}},
	}}
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, dtc)}}
	staticProxy(t, []*listenerv3.Listener{l}, staticCluster("app", app))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	resp, err := c.Get("https://127.0.0.1:" + itoa(port) + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || string(b) != "via https" {
		t.Fatalf("TLS listener with ALPN h2: %s %q; want HTTP/2.0 and X-Forwarded-Proto https", resp.Proto, b)
	}
}
