package analyzers

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
)

// VirtualServiceRules reports rules that can never be reached (IST0130)
// and match conditions that repeat an earlier rule's (IST0131).
type VirtualServiceRules struct{}

// Metadata describes the analyzer.
func (*VirtualServiceRules) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "virtualservice.RuleOrder", Description: "Checks for VirtualService rules shadowed by earlier rules",
		Codes: []*analyze.MessageType{analyze.VirtualServiceUnreachableRule, analyze.VirtualServiceIneffectiveMatch}}
}

// Analyze runs the checks.
func (*VirtualServiceRules) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.ByKind("VirtualService") {
		vs, ok := r.Object.(*networking.VirtualService)
		if !ok {
			continue
		}
		checkHTTPRules(ctx, r, vs.Spec.Http)
		var tcp [][]proto.Message
		for _, t := range vs.Spec.Tcp {
			tcp = append(tcp, messages(t.Match))
		}
		checkRules(ctx, r, "spec.tcp", tcp)
		var tls [][]proto.Message
		for _, t := range vs.Spec.Tls {
			tls = append(tls, messages(t.Match))
		}
		checkRules(ctx, r, "spec.tls", tls)
	}
}

func messages[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

func checkHTTPRules(ctx *analyze.Context, r *analyze.Resource, routes []*v1alpha3.HTTPRoute) {
	var rules [][]proto.Message
	for _, h := range routes {
		var ms []proto.Message
		for _, m := range h.Match {
			// The name only labels the match; it does not change what matches.
			c := m
			if m.Name != "" {
				c = proto.Clone(m).(*v1alpha3.HTTPMatchRequest)
				c.Name = ""
			}
			if isCatchAllHTTP(c) {
				c = &v1alpha3.HTTPMatchRequest{}
			}
			ms = append(ms, c)
		}
		rules = append(rules, ms)
	}
	checkRules(ctx, r, "spec.http", rules)
}

// isCatchAllHTTP reports whether a match selects every request: empty, or
// only a "/" prefix on the URI.
func isCatchAllHTTP(m *v1alpha3.HTTPMatchRequest) bool {
	if p, ok := m.GetUri().GetMatchType().(*v1alpha3.StringMatch_Prefix); ok && p.Prefix == "/" {
		c := proto.Clone(m).(*v1alpha3.HTTPMatchRequest)
		c.Uri = nil
		m = c
	}
	return isEmpty(m)
}

// isEmpty reports whether m sets nothing, as proto.Equal with a new
// message would, without building one: a message that sets any field or
// holds unknown fields has a non-zero encoded size.
func isEmpty(m proto.Message) bool { return proto.Size(m) == 0 }

// checkRules walks rules in order. A rule with no match conditions, or one
// whose only condition is empty, matches everything, so every later rule is
// unreachable; a condition equal to an earlier one never selects its rule.
func checkRules(ctx *analyze.Context, r *analyze.Resource, path string, rules [][]proto.Message) {
	catchAll := -1
	var earlier []proto.Message
	var earlierRule []int // the rule each of earlier belongs to
	for i, matches := range rules {
		p := fmt.Sprintf("%s[%d]", path, i)
		if catchAll >= 0 {
			ctx.Report(analyze.VirtualServiceUnreachableRule, r, p,
				"VirtualService rule %s not used (only the last rule can have no matches: %s[%d] before it matches all traffic).", p, path, catchAll)
			continue
		}
		var dup, dupOf []int // match j repeats one of rule dupOf[k]
		for j, m := range matches {
			for k, e := range earlier {
				if proto.Equal(m, e) {
					dup, dupOf = append(dup, j), append(dupOf, earlierRule[k])
					break
				}
			}
		}
		switch {
		case len(matches) > 0 && len(dup) == len(matches):
			ctx.Report(analyze.VirtualServiceUnreachableRule, r, p,
				"VirtualService rule %s not used (all of its match conditions are taken by earlier rules).", p)
		default:
			for k, j := range dup {
				ctx.Report(analyze.VirtualServiceIneffectiveMatch, r, fmt.Sprintf("%s.match[%d]", p, j),
					"VirtualService rule %s match %d is not used (duplicate/overlapping match in rule %s[%d]).", p, j, path, dupOf[k])
			}
		}
		if len(matches) == 0 {
			catchAll = i
		}
		for _, m := range matches {
			if isEmpty(m) {
				catchAll = i
			}
		}
		earlier = append(earlier, matches...)
		for range matches {
			earlierRule = append(earlierRule, i)
		}
	}
}
