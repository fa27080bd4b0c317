package router

import (
	"net/http"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// prefix_rewrite swaps the matched prefix, and for an exact path match the
// whole path, as Envoy does (a Gateway API ReplacePrefixMatch becomes an
// exact match of the prefix and a prefix match of prefix + "/", both
// rewritten); redirects' prefix_rewrite the same.
func TestPrefixRewrite(t *testing.T) {
	fwd := func(rewrite string) *routev3.Route_Route {
		return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: rewrite}}
	}
	redirect := func(rewrite string) *routev3.Route_Redirect {
		return &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: rewrite}}}
	}
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/strip"}}, Action: fwd("/")},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/strip/"}}, Action: fwd("/")},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/old"}}, Action: redirect("/new")},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/old/"}}, Action: redirect("/new/")},
	}}}}
	tab, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/strip": "/", "/strip/three": "/three"} {
		req, _ := http.NewRequest("GET", "http://x"+path, nil)
		rt := tab.Lookup(req)
		if rt == nil {
			t.Fatalf("%s: no route", path)
		}
		if got := rt.RewritePath(req.URL.Path); got != want {
			t.Errorf("%s rewritten to %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{"/old?q=1": "http://x/new?q=1", "/old/a/b": "http://x/new/a/b"} {
		req, _ := http.NewRequest("GET", "http://x"+path, nil)
		rt := tab.Lookup(req)
		if rt == nil || rt.Redirect == nil {
			t.Fatalf("%s: no redirect route", path)
		}
		if got := rt.Redirect.Location(req, rt, false); got != want {
			t.Errorf("%s redirected to %q, want %q", path, got, want)
		}
	}
}

// A redirect to another host keeps the port the request came to (a
// listener on 8080), as Envoy's does, unless it sets a port or changes the
// scheme.
func TestRedirectKeepsRequestPort(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*routev3.Route{
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/host"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "example.org"}}},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/port"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "example.org", PortRedirect: 8443}}},
		{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/scheme"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "example.org",
				SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}}}},
	}}}}
	tab, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{
		"http://gw:8080/host":   "http://example.org:8080/host",
		"http://gw/host":        "http://example.org/host",
		"http://gw:8080/port":   "http://example.org:8443/port",
		"http://gw:8080/scheme": "https://example.org/scheme",
	} {
		req, _ := http.NewRequest("GET", url, nil)
		rt := tab.Lookup(req)
		if rt == nil || rt.Redirect == nil {
			t.Fatalf("%s: no redirect route", url)
		}
		if got := rt.Redirect.Location(req, rt, false); got != want {
			t.Errorf("%s redirected to %q, want %q", url, got, want)
		}
	}
}
