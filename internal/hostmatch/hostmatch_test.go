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

func TestPickRule(t *testing.T) {
	const host = "reviews.default.svc.cluster.local"
	r := func(ns, h string, exportTo ...string) Rule { return Rule{Namespace: ns, Host: h, ExportTo: exportTo} }
	for _, c := range []struct {
		name    string
		rules   []Rule
		proxyNS string
		want    int
	}{
		{"none", nil, "shop", -1},
		{"service namespace, exported everywhere", []Rule{r("default", host)}, "shop", 0},
		{"service namespace, kept to itself, from elsewhere", []Rule{r("default", host, ".")}, "shop", -1},
		{"service namespace, kept to itself, from itself", []Rule{r("default", host, ".")}, "default", 0},
		{"service namespace, exported to the proxy's by name", []Rule{r("default", host, "shop")}, "shop", 0},
		{"service namespace, exported to none", []Rule{r("default", host, "~")}, "default", -1},
		{"proxy namespace beats service namespace", []Rule{r("default", host), r("shop", host)}, "shop", 1},
		{"proxy namespace rule exported only elsewhere is not local", []Rule{r("default", host), r("shop", host, "other")}, "shop", 0},
		{"another namespace's rule is not looked at", []Rule{r("other", host)}, "shop", -1},
		{"root namespace is the fallback", []Rule{r("mesh-system", "*.svc.cluster.local"), r("other", host)}, "shop", 0},
		{"service namespace beats root", []Rule{r("mesh-system", host), r("default", host)}, "shop", 1},
		{"root rule kept to root, from elsewhere", []Rule{r("mesh-system", host, ".")}, "shop", -1},
		{"root proxy: service namespace before an exported root rule", []Rule{r("mesh-system", host), r("default", host)}, "mesh-system", 1},
		{"root proxy: a root rule kept to root first", []Rule{r("default", host), r("mesh-system", host, ".")}, "mesh-system", 1},
		{"exact beats wildcard", []Rule{r("default", "*.default.svc.cluster.local"), r("default", host)}, "shop", 1},
		{"longer wildcard beats shorter", []Rule{r("default", "*.cluster.local"), r("default", "*.default.svc.cluster.local")}, "shop", 1},
		{"oldest among equals", []Rule{r("default", host), r("default", host)}, "shop", 0},
		{"a rule for another host", []Rule{r("default", "ratings.default.svc.cluster.local")}, "default", -1},
	} {
		if got := PickRule(c.rules, c.proxyNS, "default", "mesh-system", host); got != c.want {
			t.Errorf("%s: PickRule = %d, want %d", c.name, got, c.want)
		}
	}
}
