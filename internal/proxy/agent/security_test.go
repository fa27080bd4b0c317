package agent

import (
	"crypto/tls"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbaccfg "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}
}

func spiffeMatch(id string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}}}
}

func commonTLS(sans ...*tlsv3.SubjectAltNameMatcher) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("default")},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
			ValidationContextSdsSecretConfig: sds("ROOTCA"),
		}},
	}
}

// TestMTLSWithSDSAndRBAC runs an Istio-style pair on one proxy: an outbound
// plaintext listener that originates mTLS to an inbound STRICT listener whose
// RBAC filter allows only one principal on GET /allowed.
func TestMTLSWithSDSAndRBAC(t *testing.T) {
	app := startUpstream(t, "app", nil)
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "default", "sleep")
	cp := startControlPlane(t, "")
	inPort, outPort, out2Port := freePort(t), freePort(t), freePort(t)

	policy := &rbacv3.RBAC{Rules: &rbaccfg.RBAC{Action: rbaccfg.RBAC_ALLOW, Policies: map[string]*rbaccfg.Policy{
		"ns[default]-policy[allow-sleep]": {
			Principals: []*rbaccfg.Principal{{Identifier: &rbaccfg.Principal_Authenticated_{Authenticated: &rbaccfg.Principal_Authenticated{
				PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://cluster.local/ns/default/sa/sleep"}}}}}},
			Permissions: []*rbaccfg.Permission{{Rule: &rbaccfg.Permission_AndRules{AndRules: &rbaccfg.Permission_Set{Rules: []*rbaccfg.Permission{
				{Rule: &rbaccfg.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "GET"}}}},
				{Rule: &rbaccfg.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/allowed"}}}}}},
			}}}}},
		}}}}
	inHCM := &hcmv3.HttpConnectionManager{StatPrefix: "inbound", RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
		Name: "inbound", VirtualHosts: []*routev3.VirtualHost{{Name: "in", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("app")}}}}}},
		ForwardClientCertDetails: hcmv3.HttpConnectionManager_APPEND_FORWARD,
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, policy)}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}},
		}}
	downstreamTLS := &tlsv3.DownstreamTlsContext{CommonTlsContext: commonTLS(), RequireClientCertificate: wrapperspb.Bool(true)}
	inbound := &listenerv3.Listener{Name: "virtualInbound", Address: sockAddr("127.0.0.1", inPort), TrafficDirection: corev3.TrafficDirection_INBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, downstreamTLS)}},
			Filters:         []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, inHCM)}}}}}}
	mtlsCluster := func(name, wantSAN string) *clusterv3.Cluster {
		c := staticCluster(name, &upstream{addr: "127.0.0.1:" + itoa(inPort)})
		c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t,
			&tlsv3.UpstreamTlsContext{CommonTlsContext: commonTLS(spiffeMatch(wantSAN)), Sni: "outbound_.80_._.app.default.svc.cluster.local"})}}
		return c
	}
	outbound := httpListener(t, "outbound", outPort, "out")
	outbound2 := httpListener(t, "outbound-wrong-san", out2Port, "out2")
	res := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: {inbound, outbound, outbound2},
		resourcev3.ClusterType:  {staticCluster("app", app), mtlsCluster("to-inbound", "spiffe://cluster.local/ns/default/sa/sleep"), mtlsCluster("to-wrong", "spiffe://cluster.local/ns/other/sa/x")},
		resourcev3.RouteType: {
			&routev3.RouteConfiguration{Name: "out", VirtualHosts: []*routev3.VirtualHost{{Name: "o", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("to-inbound")}}}}},
			&routev3.RouteConfiguration{Name: "out2", VirtualHosts: []*routev3.VirtualHost{{Name: "o", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("to-wrong")}}}}},
		},
		resourcev3.SecretType: {
			&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}}}}},
			&tlsv3.Secret{Name: "ROOTCA", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: ca.pem}}}}},
		},
	}
	cp.set(res)
	p := startProxy(t, cp.addr)

	// Outbound → mTLS → inbound → RBAC → app: the proxy's own identity (sa/sleep) is allowed.
	eventually(t, "mTLS path through the proxy", func() bool {
		resp, err := client.Get(url(outPort, "/allowed/x"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 && resp.Header.Get("X-Req-X-Forwarded-Client-Cert") == "URI=spiffe://cluster.local/ns/default/sa/sleep"
	})
	if resp, body := get(t, url(outPort, "/denied")); resp.StatusCode != 403 || body != "RBAC: access denied" {
		t.Errorf("path outside the policy: %d %q; want 403 RBAC: access denied", resp.StatusCode, body)
	}
	// An upstream whose SAN does not match the expected identity is refused.
	if resp, _ := get(t, url(out2Port, "/allowed")); resp.StatusCode != 503 {
		t.Errorf("upstream SAN mismatch: status %d, want 503", resp.StatusCode)
	}
	// Direct clients: another identity is denied by RBAC; plaintext is refused by the STRICT listener.
	other := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.clientTLS(t, "prod", "intruder")}, Timeout: 5 * time.Second}
	resp, err := other.Get("https://127.0.0.1:" + itoa(inPort) + "/allowed")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("principal prod/intruder: %d %q; want 403", resp.StatusCode, b)
	}
	sleep := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.clientTLS(t, "default", "sleep")}, Timeout: 5 * time.Second}
	if resp, err := sleep.Get("https://127.0.0.1:" + itoa(inPort) + "/allowed"); err != nil || resp.StatusCode != 200 {
		t.Errorf("principal default/sleep over direct mTLS: %v %v", resp, err)
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://127.0.0.1:" + itoa(inPort) + "/allowed"); err == nil {
		t.Error("plaintext request to the STRICT mTLS listener succeeded; want it refused")
	}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
	if _, err := noCert.Get("https://127.0.0.1:" + itoa(inPort) + "/allowed"); err == nil {
		t.Error("TLS without a client certificate succeeded; want it refused")
	}
	dump := strings.Join(p.Names(resourcev3.SecretType), ",")
	if dump != "ROOTCA,default" {
		t.Errorf("SDS subscriptions %q; want ROOTCA,default", dump)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
