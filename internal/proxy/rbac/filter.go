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
			e, err := Compile(rc, c.Field)
			if err != nil {
				return nil, err
			}
			return &filter{engine: e, allowed: c.Env.Counter(c.Env.StatPrefix + "rbac.allowed"),
				denied: c.Env.Counter(c.Env.StatPrefix + "rbac.denied")}, nil
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
	ok, _ := e.Allowed(req)
	*req = Request{}
	requests.Put(req)
	if ok {
		f.allowed.Add(1)
		return httpfilter.Continue
	}
	f.denied.Add(1)
	return s.SendLocalReply(http.StatusForbidden, nil, "RBAC: access denied", "RBAC")
}
