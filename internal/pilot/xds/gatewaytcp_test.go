package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"mesh.dev/mesh/internal/pilot/model"
)

func chainNamed(l *listenerv3.Listener, prefix string) *listenerv3.FilterChain {
	for _, fc := range l.FilterChains {
		if strings.HasPrefix(fc.Name, prefix) {
			return fc
		}
	}
	return nil
}

func filterNames(fc *listenerv3.FilterChain) []string {
	var out []string
	for _, f := range fc.GetFilters() {
		out = append(out, f.GetName())
	}
	return out
}

// TestGatewayNonHTTPServers: what pilot writes for a gateway's TLS, TCP
// and passthrough servers, as istiod does: a TLS server ending TLS proxies
// by tcp routes (no HTTP connection manager); an HTTPS server and a
// passthrough route naming the same host on one port give the host to the
// first (Envoy refuses two chains with one match); AUTO_PASSTHROUGH
// matches mesh SNI names and proxies to TLS-less twins of the clusters;
// the gateway's AuthorizationPolicies guard every TCP chain.
func TestGatewayNonHTTPServers(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(gatewayService + `
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["app.example.com"]
    tls: {mode: SIMPLE, serverCertificate: /etc/certs/tls.crt, privateKey: /etc/certs/tls.key}
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 31400, name: tls-term, protocol: TLS}
    hosts: ["db.example.com"]
    tls: {mode: SIMPLE, serverCertificate: /etc/certs/tls.crt, privateKey: /etc/certs/tls.key}
  - port: {number: 15443, name: tls-auto, protocol: TLS}
    hosts: ["*.default.svc.cluster.local"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: default}
spec:
  hosts: ["*.example.com"]
  gateways: [edge]
  tls:
  - match: [{port: 443, sniHosts: [app.example.com, pass.example.com]}]
    route: [{destination: {host: reviews, port: {number: 9080}}}]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: ratings, port: {number: 9080}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge-deny, namespace: mesh-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{from: [{source: {ipBlocks: [203.0.113.0/24]}}]}]
`)); err != nil {
		t.Fatal(err)
	}
	r := generate(t, NewPushContext(model.Build(2, w.Input())), ingressNode)

	l := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, "0.0.0.0_8443")
	https, pass := chainNamed(l, "https."), chainNamed(l, "tls.443.")
	if https == nil || pass == nil {
		t.Fatalf("listener 8443 chains %v: want the HTTPS server's and the passthrough route's", l.FilterChains)
	}
	if got := pass.FilterChainMatch.ServerNames; len(got) != 1 || got[0] != "pass.example.com" {
		t.Errorf("passthrough chain server names %v: want [pass.example.com] (app.example.com belongs to the HTTPS server listed first)", got)
	}
	if pass.TransportSocket != nil {
		t.Errorf("passthrough chain ends TLS (%v); it must not", pass.TransportSocket)
	}
	if got := filterNames(pass); len(got) != 3 || got[0] != "envoy.filters.network.rbac" || got[1] != statsFilterName || got[2] != tcpProxyFilterName {
		t.Errorf("passthrough chain filters %v: want the gateway's DENY policy (network rbac), Istio's stats, then tcp_proxy", got)
	}

	term := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, "0.0.0.0_31400").FilterChains
	if len(term) != 1 || term[0].TransportSocket == nil {
		t.Fatalf("TLS server on 31400: chains %v; want one, ending TLS", term)
	}
	tp := &tcpproxy.TcpProxy{}
	if got := filterNames(term[0]); got[len(got)-1] != tcpProxyFilterName {
		t.Fatalf("TLS server's chain filters %v: want tcp_proxy last (tcp routes), not an HTTP connection manager", got)
	}
	if err := term[0].Filters[len(term[0].Filters)-1].GetTypedConfig().UnmarshalTo(tp); err != nil {
		t.Fatal(err)
	}
	if got := tp.GetCluster(); got != "outbound|9080||ratings.default.svc.cluster.local" {
		t.Errorf("TLS server proxies to %q; want the tcp route's ratings cluster", got)
	}

	auto := find[*listenerv3.Listener](t, r, resourcev3.ListenerType, "0.0.0.0_15443")
	const sni = "outbound_.9080_._.reviews.default.svc.cluster.local"
	fc := chainNamed(auto, sni)
	if fc == nil || fc.FilterChainMatch.ServerNames[0] != sni {
		t.Fatalf("AUTO_PASSTHROUGH chains: no chain for %s", sni)
	}
	c := find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, sni)
	if c.TransportSocket != nil || len(c.TransportSocketMatches) > 0 {
		t.Errorf("SNI-DNAT cluster %s has a transport socket; the client's mTLS must pass through", sni)
	}
	if got := c.GetEdsClusterConfig().GetServiceName(); got != "outbound|9080||reviews.default.svc.cluster.local" {
		t.Errorf("SNI-DNAT cluster's EDS service %q; want the outbound cluster's endpoints", got)
	}
}

// TestIstioMutualSNIAndSANs: a DestinationRule's ISTIO_MUTUAL keeps its
// sni and subjectAltNames, as istiod writes them (the egress gateway's
// ISTIO_MUTUAL server and an east-west gateway match on that SNI): the
// handshake names the rule's sni instead of the cluster's, and the peer's
// mesh certificate is checked against the mesh root and the names, a
// spiffe:// one as a URI SAN. Without them the cluster's own SNI and the
// mesh root alone.
func TestIstioMutualSNIAndSANs(t *testing.T) {
	w, _ := bookinfo(t)
	if err := w.AddYAML([]byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL, sni: outbound_.9080_._.ratings.remote.svc.cluster.local, subjectAltNames: ["spiffe://cluster.local/ns/remote/sa/ratings", ratings.example.com]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
`)); err != nil {
		t.Fatal(err)
	}
	r := generate(t, NewPushContext(model.Build(2, w.Input())), ingressNode)
	upstream := func(name string) *tlsv3.UpstreamTlsContext {
		t.Helper()
		c := find[*clusterv3.Cluster](t, r, resourcev3.ClusterType, name)
		uc := &tlsv3.UpstreamTlsContext{}
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(uc); err != nil {
			t.Fatalf("cluster %s transport socket: %v", name, err)
		}
		return uc
	}
	uc := upstream("outbound|9080||ratings.default.svc.cluster.local")
	if uc.Sni != "outbound_.9080_._.ratings.remote.svc.cluster.local" {
		t.Errorf("ratings SNI %q: want the rule's sni", uc.Sni)
	}
	cv := uc.GetCommonTlsContext().GetCombinedValidationContext()
	if cv.GetValidationContextSdsSecretConfig().GetName() != SecretRootCA {
		t.Fatalf("ratings validation %v: want the mesh root (%s) with the rule's names", uc.GetCommonTlsContext().GetValidationContextType(), SecretRootCA)
	}
	var got []string
	for _, m := range cv.GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		got = append(got, m.SanType.String()+"="+m.GetMatcher().GetExact())
	}
	if want := "URI=spiffe://cluster.local/ns/remote/sa/ratings DNS=ratings.example.com"; strings.Join(got, " ") != want {
		t.Errorf("ratings SAN matchers %v: want %s", got, want)
	}
	if uc.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName() != SecretDefault {
		t.Errorf("ratings presents %v: want the workload certificate", uc.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs())
	}
	uc = upstream("outbound|9080||details.default.svc.cluster.local")
	if uc.Sni != "outbound_.9080_._.details.default.svc.cluster.local" || uc.GetCommonTlsContext().GetValidationContextSdsSecretConfig().GetName() != SecretRootCA {
		t.Errorf("details: SNI %q, validation %v: want the cluster's SNI and the mesh root", uc.Sni, uc.GetCommonTlsContext().GetValidationContextType())
	}
}
