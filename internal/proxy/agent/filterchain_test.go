package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbaccfg "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/listener"
)

// pathProxy is a proxy serving one listener, on the lean HTTP/1.1 path or on net/http only.
type pathProxy struct {
	name   string
	port   uint32
	p      *Proxy
	client *http.Client
}

// bothPaths starts two proxies from the same config: one whose HTTP/1.1
// connections take the lean path, one that serves everything with net/http.
func bothPaths(t *testing.T, vhs []*routev3.VirtualHost, filters []*hcmv3.HttpFilter, clusters ...*clusterv3.Cluster) [2]*pathProxy {
	t.Helper()
	return bothPathsWith(t, nil, vhs, filters, clusters...)
}

// bothPathsWith is bothPaths with the bootstrap's layered_runtime.
func bothPathsWith(t *testing.T, rt *bootstrapv3.LayeredRuntime, vhs []*routev3.VirtualHost, filters []*hcmv3.HttpFilter, clusters ...*clusterv3.Cluster) [2]*pathProxy {
	t.Helper()
	return bothPathsFull(t, rt, nil, vhs, filters, clusters...)
}

// bothPathsFull is bothPathsWith with extra HTTP filter factories registered.
func bothPathsFull(t *testing.T, rt *bootstrapv3.LayeredRuntime, extra []httpfilter.Factory, vhs []*routev3.VirtualHost, filters []*hcmv3.HttpFilter, clusters ...*clusterv3.Cluster) [2]*pathProxy {
	t.Helper()
	var out [2]*pathProxy
	for i, noLean := range []bool{false, true} {
		port := freePort(t)
		b := &bootstrapv3.Bootstrap{
			Node:            &corev3.Node{Id: testNode},
			StaticResources: &bootstrapv3.Bootstrap_StaticResources{Listeners: []*listenerv3.Listener{inlineListener(t, port, vhs, filters...)}, Clusters: clusters},
			LayeredRuntime:  rt,
		}
		p, err := New(Options{Bootstrap: b, AdminAddress: "", NoLean: noLean, HTTPFilters: extra})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); p.Close() })
		waitListening(t, port)
		name := "lean"
		if noLean {
			name = "net/http"
		}
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		t.Cleanup(tr.CloseIdleConnections)
		out[i] = &pathProxy{name: name, port: port, p: p, client: &http.Client{Transport: tr}}
	}
	return out
}

// leanServed is how many requests the proxy's lean path served itself.
func (pp *pathProxy) leanServed() int64 {
	var n int64
	for _, r := range pp.p.Store.Load().List("type.googleapis.com/envoy.config.listener.v3.Listener") {
		for _, h := range r.Compiled.(*listener.Listener).HCMs() {
			n += h.Stats.LeanServed.Load()
		}
	}
	return n
}

// filterCase is one request and the answer a user would see.
type filterCase struct {
	name    string
	method  string
	path    string
	header  map[string]string
	code    int
	body    string            // "" : not checked beyond equality across paths
	headers map[string]string // response headers that must be present with these values ("" : absent)
}

// answer is what a case compares across the two paths.
type answer struct {
	code    int
	body    string
	headers string
}

func (pp *pathProxy) do(t *testing.T, c filterCase) answer {
	t.Helper()
	method := c.method
	if method == "" {
		method = "GET"
	}
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader("payload")
	}
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", pp.port, c.path), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := pp.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, c.path, pp.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, body: string(b)}
	var hs []string
	for k := range c.headers {
		hs = append(hs, k+"="+resp.Header.Get(k))
	}
	sort.Strings(hs)
	a.headers = strings.Join(hs, " ")
	return a
}

// runBoth runs each case on the lean path and on net/http, in order, and
// requires the expected answer from both.
func runBoth(t *testing.T, pps [2]*pathProxy, cases []filterCase) {
	t.Helper()
	before := pps[0].leanServed()
	for _, c := range cases {
		var got [2]answer
		for i, pp := range pps {
			got[i] = pp.do(t, c)
			a := got[i]
			if a.code != c.code || c.body != "" && a.body != c.body {
				t.Errorf("%s: %s %s on %s: %d %q; want %d %q", c.name, c.method, c.path, pp.name, a.code, a.body, c.code, c.body)
			}
			for k, v := range c.headers {
				if !strings.Contains(" "+a.headers+" ", " "+k+"="+v+" ") {
					t.Errorf("%s: on %s response headers %s; want %s=%q", c.name, pp.name, a.headers, k, v)
				}
			}
		}
		if got[0] != got[1] {
			t.Errorf("%s: the paths disagree: lean %+v, net/http %+v", c.name, got[0], got[1])
		}
	}
	if n := pps[0].leanServed() - before; n != int64(len(cases)) {
		t.Errorf("the lean proxy's lean path served %d of %d requests; the comparison needs all of them there", n, len(cases))
	}
	if n := pps[1].leanServed(); n != 0 {
		t.Errorf("the net/http proxy's lean path served %d requests; want none", n)
	}
}

func abortFault(status uint32, headerMatch ...string) *faultv3.HTTPFault {
	f := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: status}}}
	if len(headerMatch) == 2 {
		f.Headers = []*routev3.HeaderMatcher{{Name: headerMatch[0], HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: headerMatch[1]}}}
	}
	return f
}

func denyPolicy(permissions ...*rbaccfg.Permission) *rbacv3.RBAC {
	return &rbacv3.RBAC{Rules: &rbaccfg.RBAC{Action: rbaccfg.RBAC_DENY, Policies: map[string]*rbaccfg.Policy{
		"deny": {Principals: []*rbaccfg.Principal{{Identifier: &rbaccfg.Principal_Any{Any: true}}}, Permissions: permissions}}}}
}

func pathPrefixPerm(p string) *rbaccfg.Permission {
	return &rbaccfg.Permission{Rule: &rbaccfg.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}}}}}
}

func headerPerm(name, value string) *rbaccfg.Permission {
	return &rbaccfg.Permission{Rule: &rbaccfg.Permission_Header{Header: &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: value}}}}
}

func namedFilter(t *testing.T, name string, cfg interface{ ProtoReflect() protoreflectMessage }, mod ...func(*hcmv3.HttpFilter)) *hcmv3.HttpFilter {
	f := &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, cfg)}}
	for _, m := range mod {
		m(f)
	}
	return f
}

func perFilter(t *testing.T, kv ...any) map[string]*anypb.Any {
	m := map[string]*anypb.Any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = mustAny(t, kv[i+1].(interface{ ProtoReflect() protoreflectMessage }))
	}
	return m
}

// The HTTP filters (RBAC, fault) run from one chain on both request paths:
// denials, aborts, gRPC aborts, per-route RBAC policies and disabling, and
// the order of the filters give the same answers on a lean connection and
// on a net/http one.
func TestFilterChainSameAnswerOnBothPaths(t *testing.T) {
	up := startUpstream(t, "a", nil)
	grpcAbort := &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}},
		Headers: []*routev3.HeaderMatcher{{Name: "x-fault", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "grpc"}}}}
	filters := []*hcmv3.HttpFilter{
		// RBAC first: a denied request never reaches the fault filter.
		namedFilter(t, "envoy.filters.http.rbac", denyPolicy(pathPrefixPerm("/admin"), headerPerm("x-evil", "1"))),
		namedFilter(t, "envoy.filters.http.fault", abortFault(503, "x-fault", "abort")),
		namedFilter(t, "grpc-fault", grpcAbort),
	}
	strict := &rbacv3.RBACPerRoute{Rbac: denyPolicy(headerPerm("x-user", "mallory"))}
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Match: prefix("/admin/open"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, "envoy.filters.http.rbac", &rbacv3.RBACPerRoute{})},
		{Match: prefix("/strict"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, "envoy.filters.http.rbac", strict)},
		{Match: prefix("/"), Action: routeTo("a")},
	}}}
	pps := bothPaths(t, vhs, filters, staticCluster("a", up))
	runBoth(t, pps, []filterCase{
		{name: "allowed", path: "/public", code: 200, body: "a", headers: map[string]string{"X-Upstream": "a"}},
		{name: "RBAC denies a path", path: "/admin/users", code: 403, body: "RBAC: access denied", headers: map[string]string{"Content-Type": "text/plain", "X-Upstream": ""}},
		{name: "RBAC denies a header", path: "/public", header: map[string]string{"X-Evil": "1"}, code: 403, body: "RBAC: access denied"},
		{name: "RBAC denies a POST with a body", method: "POST", path: "/admin/x", code: 403, body: "RBAC: access denied"},
		{name: "fault aborts on its header", path: "/public", header: map[string]string{"X-Fault": "abort"}, code: 503, body: "fault filter abort"},
		{name: "RBAC runs before fault", path: "/admin", header: map[string]string{"X-Fault": "abort"}, code: 403, body: "RBAC: access denied"},
		{name: "gRPC abort", path: "/svc/Method", header: map[string]string{"X-Fault": "grpc"}, code: 200, body: "",
			headers: map[string]string{"Grpc-Status": "14", "Content-Type": "application/grpc"}},
		{name: "empty RBACPerRoute turns RBAC off on the route", path: "/admin/open", code: 200, body: "a"},
		{name: "per-route RBAC policy replaces the filter's: allowed", path: "/strict/admin", code: 200, body: "a"},
		{name: "per-route RBAC policy replaces the filter's: denied", path: "/strict", header: map[string]string{"X-User": "mallory"}, code: 403, body: "RBAC: access denied"},
	})
	// The filters' counters are the chain's, named as Envoy names them.
	for _, pp := range pps {
		stats := map[string]int64{}
		for _, r := range pp.p.Store.Load().List("type.googleapis.com/envoy.config.listener.v3.Listener") {
			for _, h := range r.Compiled.(*listener.Listener).HCMs() {
				for _, c := range h.FilterStats() {
					stats[c.Name] = c.Value.Load()
				}
			}
		}
		if stats["http.test.rbac.denied"] != 5 || stats["http.test.fault.aborts_injected"] != 2 {
			t.Errorf("%s: filter stats %v; want 5 rbac.denied and 2 fault.aborts_injected", pp.name, stats)
		}
	}
}

// typed_per_filter_config follows Envoy's precedence (weighted cluster over
// route over virtual host), a FilterConfig with
// disabled: true turns a filter off where it is given, and a filter disabled
// in the HCM runs only on routes that enable it, on both paths.
func TestFilterChainPerRouteOverridesOnBothPaths(t *testing.T) {
	up := startUpstream(t, "a", nil)
	filters := []*hcmv3.HttpFilter{
		namedFilter(t, "envoy.filters.http.fault", &faultv3.HTTPFault{}),
		namedFilter(t, "teapot", abortFault(418), func(f *hcmv3.HttpFilter) { f.Disabled = true }),
	}
	off := &routev3.FilterConfig{Disabled: true}
	enable := &routev3.FilterConfig{}
	weighted := &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
		Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(100),
			TypedPerFilterConfig: perFilter(t, "envoy.filters.http.fault", abortFault(502))}}}}}}
	vhs := []*routev3.VirtualHost{
		{Name: "vh", Domains: []string{"vh.test"}, TypedPerFilterConfig: perFilter(t, "envoy.filters.http.fault", abortFault(500)), Routes: []*routev3.Route{
			{Match: prefix("/route"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, "envoy.filters.http.fault", abortFault(501))},
			{Match: prefix("/weighted"), Action: weighted, TypedPerFilterConfig: perFilter(t, "envoy.filters.http.fault", abortFault(501))},
			{Match: prefix("/off"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, "envoy.filters.http.fault", off)},
			{Match: prefix("/"), Action: routeTo("a")},
		}},
		{Name: "plain", Domains: []string{"*"}, Routes: []*routev3.Route{
			{Match: prefix("/teapot-own"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, "teapot", abortFault(429))},
			{Match: prefix("/teapot"), Action: routeTo("a"), TypedPerFilterConfig: perFilter(t, "teapot", enable)},
			{Match: prefix("/"), Action: routeTo("a")},
		}},
	}
	pps := bothPaths(t, vhs, filters, staticCluster("a", up))
	vh := map[string]string{"Host": "vh.test"}
	runBoth(t, pps, []filterCase{
		{name: "virtual host level", path: "/x", header: vh, code: 500, body: "fault filter abort"},
		{name: "route over virtual host", path: "/route", header: vh, code: 501, body: "fault filter abort"},
		{name: "weighted cluster over route", path: "/weighted", header: vh, code: 502, body: "fault filter abort"},
		{name: "FilterConfig disabled on a route", path: "/off", header: vh, code: 200, body: "a"},
		{name: "the HCM's own config elsewhere (no abort)", path: "/x", code: 200, body: "a"},
		{name: "a filter disabled in the HCM does not run", path: "/other", code: 200, body: "a"},
		{name: "an empty FilterConfig enables it with its own config", path: "/teapot", code: 418, body: "fault filter abort"},
		{name: "a per-route config enables it with that config", path: "/teapot-own", code: 429, body: "fault filter abort"},
	})
}
