package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestRouterMatchesAndRewrites(t *testing.T) {
	a := startUpstream(t, "a", nil)
	b := startUpstream(t, "b", nil)
	c := startUpstream(t, "c", nil)
	port := freePort(t)
	exactMatch := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	vhs := []*routev3.VirtualHost{
		{Name: "reviews", Domains: []string{"reviews", "reviews.default.svc.cluster.local"}, Routes: []*routev3.Route{
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/exact"}}, Action: routeTo("b")},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/items/[0-9]+"}}}, Action: routeTo("c")},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Headers: []*routev3.HeaderMatcher{{
				Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactMatch("jason")}}}}, Action: routeTo("b")},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, QueryParameters: []*routev3.QueryParameterMatcher{{
				Name: "canary", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exactMatch("1")}}}}, Action: routeTo("c")},
			{Match: prefix("/api/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "a"}, PrefixRewrite: "/v2/",
				HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "backend.internal"}}},
				RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-added", Value: "yes"},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}},
				RequestHeadersToRemove:  []string{"x-secret"},
				ResponseHeadersToAdd:    []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-resp", Value: "added"}}},
				ResponseHeadersToRemove: []string{"x-upstream"}},
			{Match: prefix("/old"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"}, ResponseCode: routev3.RedirectAction_FOUND}}},
			{Match: prefix("/direct"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418,
				Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "teapot"}}}}},
			{Match: prefix("/"), Action: routeTo("a")},
		}},
		{Name: "wild", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("c")}}},
	}
	staticProxy(t, []*listenerv3.Listener{inlineListener(t, port, vhs)}, staticCluster("a", a), staticCluster("b", b), staticCluster("c", c))
	h := "Host"
	cases := []struct {
		name, path string
		hdr        []string
		want       string
	}{
		{"prefix default", "/anything", []string{h, "reviews"}, "a"},
		{"exact path", "/exact", []string{h, "reviews:9080"}, "b"},
		{"exact path does not match longer", "/exact/more", []string{h, "reviews"}, "a"},
		{"regex path", "/items/42", []string{h, "reviews"}, "c"},
		{"regex must match whole path", "/items/42x", []string{h, "reviews"}, "a"},
		{"header match", "/p", []string{h, "reviews", "end-user", "jason"}, "b"},
		{"header mismatch", "/p", []string{h, "reviews", "end-user", "ann"}, "a"},
		{"query match", "/p?canary=1", []string{h, "reviews"}, "c"},
		{"suffix wildcard domain", "/", []string{h, "shop.example.com"}, "c"},
	}
	for _, tc := range cases {
		resp, body := get(t, url(port, tc.path), tc.hdr...)
		if resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%s: GET %s → %d %q; want 200 %q", tc.name, tc.path, resp.StatusCode, body, tc.want)
		}
	}
	if resp, _ := get(t, url(port, "/"), h, "unknown.host"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown host: status %d, want 404", resp.StatusCode)
	}
	resp, body := get(t, url(port, "/api/users"), h, "reviews", "x-secret", "s3cret", "x-added", "old")
	if body != "a" || resp.Header.Get("X-Seen-Path") != "/v2/users" || resp.Header.Get("X-Seen-Host") != "backend.internal" {
		t.Errorf("rewrite: body %q path %q host %q; want a, /v2/users, backend.internal", body, resp.Header.Get("X-Seen-Path"), resp.Header.Get("X-Seen-Host"))
	}
	if resp.Header.Get("X-Req-X-Secret") != "" || strings.Join(resp.Header.Values("X-Req-X-Added"), ",") != "yes" {
		t.Errorf("request headers: x-secret %q (want removed), x-added %q (want overwritten to yes)", resp.Header.Get("X-Req-X-Secret"), resp.Header.Values("X-Req-X-Added"))
	}
	if resp.Header.Get("X-Resp") != "added" || resp.Header.Get("X-Upstream") != "" {
		t.Errorf("response headers: x-resp %q (want added), x-upstream %q (want removed)", resp.Header.Get("X-Resp"), resp.Header.Get("X-Upstream"))
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	rreq, _ := http.NewRequest(http.MethodGet, url(port, "/old/page?q=1"), nil)
	rreq.Host = "reviews"
	rr, err := noRedirect.Do(rreq)
	if err != nil {
		t.Fatal(err)
	}
	rr.Body.Close()
	if rr.StatusCode != 302 || rr.Header.Get("Location") != "http://reviews/new/page?q=1" {
		t.Errorf("redirect: %d %q; want 302 …/new/page?q=1", rr.StatusCode, rr.Header.Get("Location"))
	}
	if resp, body := get(t, url(port, "/direct"), h, "reviews"); resp.StatusCode != 418 || body != "teapot" {
		t.Errorf("direct response: %d %q", resp.StatusCode, body)
	}
}

// auto_host_rewrite sends the chosen endpoint's hostname as Host, on the
// lean path (a plain GET) and on the net/http path (a chunked POST).
func TestAutoHostRewriteUsesTheEndpointHostname(t *testing.T) {
	a := startUpstream(t, "a", nil)
	port := freePort(t)
	c := staticCluster("a", a)
	c.LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint().Hostname = "reviews-v1.internal"
	one(t, port, []*routev3.Route{{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: "a"},
		HostRewriteSpecifier: &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)}}}}}, nil, c)
	if resp, _ := get(t, url(port, "/x"), "Host", "reviews"); resp.Header.Get("X-Seen-Host") != "reviews-v1.internal" {
		t.Errorf("GET: upstream saw Host %q, want the endpoint's hostname", resp.Header.Get("X-Seen-Host"))
	}
	req, _ := http.NewRequest("POST", url(port, "/y"), io.MultiReader(strings.NewReader("chunked"))) // unknown length: sent chunked
	req.Host = "reviews"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Seen-Host") != "reviews-v1.internal" {
		t.Errorf("chunked POST: upstream saw Host %q, want the endpoint's hostname", resp.Header.Get("X-Seen-Host"))
	}
}
