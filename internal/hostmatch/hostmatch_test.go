package hostmatch

import "testing"

func TestResolveAndMatch(t *testing.T) {
	for _, c := range []struct{ host, ns, want string }{
		{"reviews", "default", "reviews.default.svc.cluster.local"},
		{"reviews.default.svc.cluster.local", "shop", "reviews.default.svc.cluster.local"},
		{"api.example.com", "shop", "api.example.com"},
		{"*.example.com", "shop", "*.example.com"},
		{"*", "shop", "*"},
	} {
		if got := Resolve(c.host, c.ns); got != c.want {
			t.Errorf("Resolve(%q, %q) = %q, want %q", c.host, c.ns, got, c.want)
		}
	}
	for _, c := range []struct {
		pattern, host string
		want          bool
	}{
		{"*", "a.b", true},
		{"*.example.com", "api.example.com", true},
		{"*.example.com", "example.com", false},
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "web.example.com", false},
	} {
		if got := Matches(c.pattern, c.host); got != c.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", c.pattern, c.host, got, c.want)
		}
	}
}

func TestExported(t *testing.T) {
	for _, c := range []struct {
		exportTo []string
		own, ns  string
		want     bool
	}{
		{nil, "a", "b", true},
		{[]string{"*"}, "a", "b", true},
		{[]string{"."}, "a", "a", true},
		{[]string{"."}, "a", "b", false},
		{[]string{"b"}, "a", "b", true},
		{[]string{"c"}, "a", "b", false},
		{[]string{"~"}, "a", "a", false},
		{[]string{".", "c"}, "a", "c", true},
	} {
		if got := Exported(c.exportTo, c.own, c.ns); got != c.want {
			t.Errorf("Exported(%v, own %s, from %s) = %v, want %v", c.exportTo, c.own, c.ns, got, c.want)
		}
	}
}

func TestEgressAdmits(t *testing.T) {
	for _, c := range []struct {
		entry, scNS, svcNS, host string
		want                     bool
	}{
		{"./*", "shop", "shop", "cart.shop.svc.cluster.local", true},
		{"./*", "shop", "default", "reviews.default.svc.cluster.local", false},
		{"*/*", "shop", "default", "reviews.default.svc.cluster.local", true},
		{"default/reviews.default.svc.cluster.local", "shop", "default", "reviews.default.svc.cluster.local", true},
		{"default/*.example.com", "shop", "default", "reviews.default.svc.cluster.local", false},
		{"~/*", "shop", "shop", "cart.shop.svc.cluster.local", false},
		{"*", "shop", "shop", "cart.shop.svc.cluster.local", false},
	} {
		if got := EgressAdmits(c.entry, c.scNS, c.svcNS, c.host); got != c.want {
			t.Errorf("EgressAdmits(%q, sidecar in %s, service in %s %s) = %v, want %v", c.entry, c.scNS, c.svcNS, c.host, got, c.want)
		}
	}
}
