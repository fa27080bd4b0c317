package rbac

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/protofields"
)

// Type URLs of the RBAC HTTP filter's config and its per-route config.
const (
	TypeURL         = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	PerRouteTypeURL = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
)

// Factory registers the RBAC HTTP filter (envoy.filters.http.rbac).
func Factory() httpfilter.Factory {
	return httpfilter.Factory{
		Name:          "envoy.filters.http.rbac",
		ConfigTypes:   []string{TypeURL},
		PerRouteTypes: []string{PerRouteTypeURL},
		New: func(c httpfilter.Config) (httpfilter.Filter, error) {
			rc := &rbacv3.RBAC{}
			if err := c.Any.UnmarshalTo(rc); err != nil {
				return nil, fmt.Errorf("%s: %w", c.Field, err)
			}
			if err := protofields.Check(rc, c.Field, "rules", "shadow_rules", "shadow_rules_stat_prefix"); err != nil {
				return nil, err
			}
			e, err := Compile(rc, c.Field)
			if err != nil {
				return nil, err
			}
			f := &filter{engine: e, allowed: c.Env.Counter(c.Env.StatPrefix + "rbac.allowed"),
				denied: c.Env.Counter(c.Env.StatPrefix + "rbac.denied")}
			if rc.GetShadowRules() != nil {
				if f.shadow, err = CompileRules(rc.GetShadowRules(), c.Field+".shadow_rules"); err != nil {
					return nil, err
				}
				p := rc.GetShadowRulesStatPrefix()
				f.shadowID, f.shadowResult = p+"shadow_effective_policy_id", p+"shadow_engine_result"
				f.shadowAllowed = c.Env.Counter(c.Env.StatPrefix + "rbac." + p + "shadow_allowed")
				f.shadowDenied = c.Env.Counter(c.Env.StatPrefix + "rbac." + p + "shadow_denied")
			}
			return f, nil
		},
		NewPerRoute: compilePerRoute,
	}
}

// perRoute is a compiled RBACPerRoute: a route's own policy in place of the filter's, or none (the filter is off).
type perRoute struct{ engine *Engine }

func compilePerRoute(a *anypb.Any, field string) (any, error) {
	pr := &rbacv3.RBACPerRoute{}
	if err := a.UnmarshalTo(pr); err != nil {
		return nil, fmt.Errorf("%s: want RBACPerRoute: %w", field, err)
	}
	if err := protofields.Check(pr, field, "rbac"); err != nil {
		return nil, err
	}
	if pr.GetRbac() == nil {
		return &perRoute{}, nil // Envoy: an RBACPerRoute without rbac disables the filter on the route
	}
	e, err := Compile(pr.GetRbac(), field+".rbac")
	if err != nil {
		return nil, err
	}
	return &perRoute{engine: e}, nil
}

type filter struct {
	engine          *Engine
	allowed, denied *atomic.Int64

	// shadow_rules decide nothing: their result goes to the request's
	// dynamic metadata under the filter's name, as Envoy writes it
	// (<prefix>shadow_effective_policy_id, <prefix>shadow_engine_result),
	// where Istio's ext_authz filter looks to know whether a CUSTOM policy
	// selects the request.
	shadow                      *Engine
	shadowID, shadowResult      string
	shadowAllowed, shadowDenied *atomic.Int64
}

// MetadataNamespace is where the filter leaves its shadow results.
const MetadataNamespace = "envoy.filters.http.rbac"

// Envoy's shared dynamic metadata: a LOG action leaves access_log_hint
// there, which access logs read (%DYNAMIC_METADATA(envoy.common:access_log_hint)%).
const (
	CommonNamespace = "envoy.common"
	AccessLogHint   = "access_log_hint"
)

// SetAccessLogHint records whether the request should be logged, by Envoy's
// rule for the shared key: a true is never overwritten by a false (another
// LOG filter that matched already decided).
func SetAccessLogHint(md *httpfilter.Metadata, log bool) {
	prev, _ := md.Get(CommonNamespace).(map[string]any)
	if b, _ := prev[AccessLogHint].(bool); b {
		return
	}
	m := make(map[string]any, len(prev)+1)
	for k, v := range prev {
		m[k] = v
	}
	m[AccessLogHint] = log
	md.Set(CommonNamespace, m)
}

// requests recycles the evaluation record: predicates take a pointer, which would otherwise escape per request.
var requests = sync.Pool{New: func() any { return new(Request) }}

func (f *filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	e := f.engine
	if pr, ok := s.PerRoute().(*perRoute); ok {
		if pr.engine == nil {
			return httpfilter.Continue
		}
		e = pr.engine
	}
	req := requests.Get().(*Request)
	*req = Request{HTTP: s.Request, Principal: s.Peer.Principal(), Remote: s.Peer.Remote, Local: s.Peer.Local, SNI: s.Peer.SNI, Meta: s.Meta()}
	if f.shadow != nil {
		f.evalShadow(s, req)
	}
	var ok bool
	if e.log {
		// LOG (Istio's AUDIT) never blocks: it marks the request for the
		// access log, as Envoy does, whether a policy matched or not.
		SetAccessLogHint(s.Meta(), e.Matches(req))
		ok = true
	} else {
		ok, _ = e.Allowed(req)
	}
	*req = Request{}
	requests.Put(req)
	if ok {
		f.allowed.Add(1)
		return httpfilter.Continue
	}
	f.denied.Add(1)
	return s.SendLocalReply(http.StatusForbidden, nil, "RBAC: access denied", "RBAC")
}

// evalShadow runs the shadow rules and records their result.
func (f *filter) evalShadow(s *httpfilter.Stream, req *Request) {
	ok, id := f.shadow.Allowed(req)
	result := "allowed"
	if ok {
		f.shadowAllowed.Add(1)
	} else {
		f.shadowDenied.Add(1)
		result = "denied"
	}
	md := map[string]any{}
	if prev, ok := s.Meta().Get(MetadataNamespace).(map[string]any); ok {
		for k, v := range prev {
			md[k] = v // another RBAC filter's shadow results
		}
	}
	md[f.shadowResult] = result
	if id != "" {
		md[f.shadowID] = id
	}
	s.Meta().Set(MetadataNamespace, md)
}
