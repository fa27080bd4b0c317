package proxyconfig

import (
	"fmt"
	"sort"
	"strings"

	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	actionv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/action/v3"
	gpmatcher "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/matcher/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/configdump"
)

const genericProxyType = "type.googleapis.com/envoy.extensions.filters.network.generic_proxy.v3.GenericProxy"

// genericRoutes are the routes of the generic_proxy filters (Thrift, declared
// protocols) in the dump's listeners: their route tables are inline, not
// route configuration resources. Each row is one route, its match as
// "attribute=value" terms and where it goes.
func genericRoutes(d *configdump.Dump, f Filter) []RouteRow {
	var rows []RouteRow
	for _, r := range d.Of(configdump.KindListener) {
		l, ok := r.Message.(*listenerv3.Listener)
		if !ok {
			continue
		}
		chains := append([]*listenerv3.FilterChain{}, l.GetFilterChains()...)
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains, l.GetDefaultFilterChain())
		}
		for _, fc := range chains {
			for _, nf := range fc.GetFilters() {
				if nf.GetTypedConfig().GetTypeUrl() != genericProxyType {
					continue
				}
				gp := &gpv3.GenericProxy{}
				if nf.GetTypedConfig().UnmarshalTo(gp) != nil {
					continue
				}
				rc := gp.GetRouteConfig()
				name := rc.GetName()
				if name == "" {
					name = l.GetName()
				}
				if rc == nil || !contains(name, f.Name) {
					continue
				}
				codec := gp.GetCodecConfig().GetName()
				if rc.GetRoutes() != nil {
					for _, m := range describeMatcher(rc.GetRoutes(), "") {
						rows = append(rows, RouteRow{Name: name, VirtualHost: codec, Domains: "*", Match: m, VirtualService: "-", resource: r})
					}
				}
				for _, vh := range rc.GetVirtualHosts() {
					for _, m := range describeMatcher(vh.GetRoutes(), "") {
						rows = append(rows, RouteRow{Name: name, VirtualHost: vh.GetName(), Domains: describeDomains(vh.GetHosts()), Match: m, VirtualService: "-", resource: r})
					}
				}
			}
		}
	}
	return rows
}

// describeMatcher lists a match tree's routes as "terms -> cluster".
func describeMatcher(m *xdsmatcher.Matcher, prefix string) []string {
	var out []string
	join := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + " & " + b
	}
	add := func(cond string, on *xdsmatcher.Matcher_OnMatch) {
		if sub := on.GetMatcher(); sub != nil {
			out = append(out, describeMatcher(sub, cond)...)
			return
		}
		if cond == "" {
			cond = "*"
		}
		out = append(out, cond+" -> "+describeAction(on.GetAction().GetTypedConfig()))
	}
	for _, fm := range m.GetMatcherList().GetMatchers() {
		add(join(prefix, describePredicate(fm.GetPredicate())), fm.GetOnMatch())
	}
	if t := m.GetMatcherTree(); t != nil {
		in := describeInput(t.GetInput().GetTypedConfig())
		for _, mm := range []struct {
			op string
			m  map[string]*xdsmatcher.Matcher_OnMatch
		}{{"=", t.GetExactMatchMap().GetMap()}, {"^=", t.GetPrefixMatchMap().GetMap()}} {
			keys := make([]string, 0, len(mm.m))
			for k := range mm.m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				add(join(prefix, in+mm.op+k), mm.m[k])
			}
		}
	}
	if on := m.GetOnNoMatch(); on != nil {
		add(prefix, on)
	}
	return out
}

func describePredicate(p *xdsmatcher.Matcher_MatcherList_Predicate) string {
	switch {
	case p.GetSinglePredicate() != nil:
		sp := p.GetSinglePredicate()
		in := describeInput(sp.GetInput().GetTypedConfig())
		v := sp.GetValueMatch()
		switch {
		case v.GetPrefix() != "":
			return in + "^=" + v.GetPrefix()
		case v.GetSuffix() != "":
			return in + "$=" + v.GetSuffix()
		case v.GetContains() != "":
			return in + "*=" + v.GetContains()
		case v.GetSafeRegex() != nil:
			return in + "~" + v.GetSafeRegex().GetRegex()
		}
		return in + "=" + v.GetExact()
	case p.GetAndMatcher() != nil, p.GetOrMatcher() != nil:
		list, sep := p.GetAndMatcher().GetPredicate(), " & "
		if p.GetOrMatcher() != nil {
			list, sep = p.GetOrMatcher().GetPredicate(), " | "
		}
		var parts []string
		for _, q := range list {
			parts = append(parts, describePredicate(q))
		}
		return "(" + strings.Join(parts, sep) + ")"
	case p.GetNotMatcher() != nil:
		return "!" + describePredicate(p.GetNotMatcher())
	}
	return "?"
}

func describeInput(a *anypb.Any) string {
	tu := a.GetTypeUrl()
	switch {
	case strings.HasSuffix(tu, ".MethodMatchInput"):
		return "method"
	case strings.HasSuffix(tu, ".ServiceMatchInput"), strings.HasSuffix(tu, ".HostMatchInput"):
		return "service"
	case strings.HasSuffix(tu, ".PropertyMatchInput"):
		pi := &gpmatcher.PropertyMatchInput{}
		if a.UnmarshalTo(pi) == nil {
			return pi.GetPropertyName()
		}
	}
	return tu[strings.LastIndexByte(tu, '.')+1:]
}

func describeAction(a *anypb.Any) string {
	ra := &actionv3.RouteAction{}
	if a == nil || a.UnmarshalTo(ra) != nil {
		return "?"
	}
	if c := ra.GetCluster(); c != "" {
		return c
	}
	var parts []string
	for _, w := range ra.GetWeightedClusters().GetClusters() {
		parts = append(parts, fmt.Sprintf("%s (%d)", w.GetName(), w.GetWeight().GetValue()))
	}
	return strings.Join(parts, ", ")
}
