package router

import (
	"crypto/tls"
	"net/http"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Routes match the pseudo-headers :method, :authority, :scheme and :path
// (what Istio's method, authority and scheme matches become) against the
// request itself: Go keeps them outside the header map.
func TestPseudoHeaderMatches(t *testing.T) {
	route := func(name, header, value string) *routev3.Route {
		return &routev3.Route{Name: name,
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
				Headers: []*routev3.HeaderMatcher{{Name: header, HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: value}}}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name}}}}
	}
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*routev3.Route{
		route("post", ":method", "POST"),
		route("host", ":authority", "a.example.com"),
		route("secure", ":scheme", "https"),
		route("path", ":path", "/p?q=1"),
	}}}}
	tab, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, url string
		tls         bool
		want        string // route name, "" none
	}{
		{"POST", "http://x/", false, "post"},
		{"GET", "http://a.example.com/", false, "host"},
		{"GET", "http://x/", true, "secure"},
		{"GET", "http://x/p?q=1", false, "path"},
		{"GET", "http://x/p?q=2", false, ""},
		{"HEAD", "http://x/", false, ""},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		if tc.tls {
			req.TLS = &tls.ConnectionState{}
		}
		got := ""
		if rt := tab.Lookup(req); rt != nil {
			got = rt.Name
		}
		if got != tc.want {
			t.Errorf("%s %s (tls %v): route %q, want %q", tc.method, tc.url, tc.tls, got, tc.want)
		}
	}
}
