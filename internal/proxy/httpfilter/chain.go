package httpfilter

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	udpatype "github.com/cncf/xds/go/udpa/type/v1"
	xdstype "github.com/cncf/xds/go/xds/type/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/proxy/router"
)

// RouterType is the type URL of the terminal router filter, which the request paths implement themselves.
const RouterType = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

const filterConfigType = "type.googleapis.com/envoy.config.route.v3.FilterConfig"

// The TypedStruct wrappers: a config whose protobuf the control plane does
// not link (Istio's peer metadata filter) comes as its type URL and a JSON-like Struct.
const (
	udpaTypedStruct = "type.googleapis.com/udpa.type.v1.TypedStruct"
	xdsTypedStruct  = "type.googleapis.com/xds.type.v3.TypedStruct"
)

// unwrapTypedStruct returns the inner type URL and value of a TypedStruct, or a's own type URL.
func unwrapTypedStruct(a *anypb.Any) (string, *structpb.Struct, error) {
	switch a.GetTypeUrl() {
	case udpaTypedStruct:
		ts := &udpatype.TypedStruct{}
		if err := a.UnmarshalTo(ts); err != nil {
			return "", nil, err
		}
		return ts.GetTypeUrl(), ts.GetValue(), nil
	case xdsTypedStruct:
		ts := &xdstype.TypedStruct{}
		if err := a.UnmarshalTo(ts); err != nil {
			return "", nil, err
		}
		return ts.GetTypeUrl(), ts.GetValue(), nil
	}
	return a.GetTypeUrl(), nil, nil
}

// Config is what a Factory gets to build one filter instance.
type Config struct {
	Name string     // the HttpFilter's name, under which routes give per-route config
	Any  *anypb.Any // typed_config
	// Struct is the value of a typed_config sent as a TypedStruct (Any is then the wrapper).
	Struct *structpb.Struct
	Field  string // where the config is, for errors ("listener "x" ... http_filters[1] (envoy.filters.http.rbac)")
	Env    Env
}

// Factory builds one kind of filter.
type Factory struct {
	Name          string   // Envoy's canonical name, e.g. envoy.filters.http.rbac (for messages)
	ConfigTypes   []string // typed_config type URLs it compiles
	PerRouteTypes []string // typed_per_filter_config type URLs it compiles (none: no per-route config)
	New           func(c Config) (Filter, error)
	// NewPerRoute compiles a per-route config; the result is what Stream.PerRoute returns.
	NewPerRoute func(a *anypb.Any, field string) (any, error)
}

// Registry maps type URLs to the factories the proxy ships.
type Registry struct {
	byType     map[string]*Factory
	byPerRoute map[string]*Factory
	names      []string
	Log        *slog.Logger // where skipped optional filters are reported (nil: slog's default)
}

// NewRegistry lists the filters a proxy ships; a type URL claimed twice panics, as that is a programming error.
func NewRegistry(fs ...Factory) *Registry {
	r := &Registry{byType: map[string]*Factory{}, byPerRoute: map[string]*Factory{}}
	for i := range fs {
		f := &fs[i]
		for _, t := range f.ConfigTypes {
			if _, dup := r.byType[t]; dup {
				panic("httpfilter: type " + t + " registered twice")
			}
			r.byType[t] = f
		}
		for _, t := range f.PerRouteTypes {
			if _, dup := r.byPerRoute[t]; dup {
				panic("httpfilter: per-route type " + t + " registered twice")
			}
			r.byPerRoute[t] = f
		}
		r.names = append(r.names, f.Name)
	}
	r.names = append(r.names, "envoy.filters.http.router")
	sort.Strings(r.names)
	return r
}

func (r *Registry) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// Supported names the filters the registry knows, for messages.
func (r *Registry) Supported() string { return strings.Join(r.names, ", ") }

type entry struct {
	name     string
	filter   Filter
	enc      Encoder
	body     BodyDecoder
	encBody  BodyEncoder
	disabled bool // HttpFilter.disabled: runs only where a route's typed_per_filter_config enables it
}

// Chain is a compiled http_filters list: the filters before the router, in order.
type Chain struct {
	filters   []entry
	encoders  bool
	wantsBody bool
	respBody  bool
	Router    *anypb.Any // the router filter's typed_config
	counters  []Counter
	// completers are the filters with a completion phase, in chain order.
	completers []Completer
}

// Compile builds the chain of one HCM. Unknown filter types are refused by
// name unless the entry is is_optional (then skipped with a warning), the
// router must be last and cannot be disabled, and a disabled entry runs only
// on routes that enable it through typed_per_filter_config.
func (r *Registry) Compile(hfs []*hcmv3.HttpFilter, field string, env Env) (*Chain, error) {
	if r == nil {
		r = NewRegistry()
	}
	c := &Chain{}
	env.counters = &c.counters
	sawRouter := false
	for i, hf := range hfs {
		ff := fmt.Sprintf("%s.http_filters[%d] (%s)", field, i, hf.GetName())
		if sawRouter {
			return nil, fmt.Errorf("%s: the router filter must be the last HTTP filter", ff)
		}
		// Names need not be unique, as in Envoy: Istio writes its DENY and
		// ALLOW RBAC filters (and CUSTOM's shadow one) all as
		// envoy.filters.http.rbac. Per-route config under a name applies
		// to every filter of that name.
		if hf.GetConfigDiscovery() != nil {
			if hf.GetIsOptional() {
				r.log().Warn("skipping optional HTTP filter: config_discovery (ECDS) is not supported", "filter", hf.GetName())
				continue
			}
			return nil, fmt.Errorf("%s.config_discovery: extension config discovery (ECDS) is not supported; give typed_config", ff)
		}
		tc := hf.GetTypedConfig()
		tu, st, err := unwrapTypedStruct(tc)
		if err != nil {
			return nil, fmt.Errorf("%s.typed_config: %w", ff, err)
		}
		if tu == RouterType {
			if hf.GetDisabled() {
				return nil, fmt.Errorf("%s.disabled: the router is the terminal filter and cannot be disabled", ff)
			}
			sawRouter = true
			c.Router = tc
			continue
		}
		f := r.byType[tu]
		if f == nil {
			if hf.GetIsOptional() {
				// Envoy's contract for is_optional: an unknown optional filter is skipped.
				r.log().Warn("skipping optional HTTP filter the proxy does not implement", "filter", hf.GetName(), "type", tu)
				continue
			}
			return nil, fmt.Errorf("%s: HTTP filter type %q is not supported (supported: %s; mark it is_optional to run without it)", ff, tu, r.Supported())
		}
		flt, err := f.New(Config{Name: hf.GetName(), Any: tc, Struct: st, Field: ff, Env: env})
		if err != nil {
			return nil, err
		}
		e := entry{name: hf.GetName(), filter: flt, disabled: hf.GetDisabled()}
		e.enc, _ = flt.(Encoder)
		e.body, _ = flt.(BodyDecoder)
		e.encBody, _ = flt.(BodyEncoder)
		if d, ok := flt.(Completer); ok {
			c.completers = append(c.completers, d)
		}
		c.respBody = c.respBody || e.encBody != nil
		c.encoders = c.encoders || e.enc != nil
		c.wantsBody = c.wantsBody || e.body != nil
		c.filters = append(c.filters, e)
	}
	if !sawRouter {
		return nil, fmt.Errorf("%s.http_filters: the router filter (envoy.filters.http.router) is required", field)
	}
	if len(c.filters) > 64 {
		return nil, fmt.Errorf("%s.http_filters: %d filters before the router; at most 64 are supported", field, len(c.filters))
	}
	return c, nil
}

// PerRoute compiles one typed_per_filter_config entry (router.Options.PerFilter):
// a FilterConfig wrapper gives disabled and is_optional, the config's type URL
// picks the factory, and an unknown type is refused unless the entry is optional
// (then it returns nil: the entry is ignored).
func (r *Registry) PerRoute(name string, a *anypb.Any, field string) (*router.FilterConfig, error) {
	if r == nil {
		r = NewRegistry()
	}
	optional := false
	if a.GetTypeUrl() == filterConfigType {
		fc := &routev3.FilterConfig{}
		if err := a.UnmarshalTo(fc); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if fc.GetDisabled() {
			return &router.FilterConfig{Disabled: true}, nil // Envoy ignores config when disabled
		}
		if fc.GetConfig() == nil {
			return &router.FilterConfig{}, nil // enables a filter disabled in the HCM, with its own config
		}
		a, optional, field = fc.GetConfig(), fc.GetIsOptional(), field+".config"
	}
	f := r.byPerRoute[a.GetTypeUrl()]
	if f == nil || f.NewPerRoute == nil {
		if optional {
			r.log().Warn("ignoring optional per-route config for a filter the proxy does not implement", "filter", name, "type", a.GetTypeUrl())
			return nil, nil
		}
		return nil, fmt.Errorf("%s: per-route config type %q is not supported (filters with per-route config: %s)", field, a.GetTypeUrl(), r.perRouteNames())
	}
	v, err := f.NewPerRoute(a, field)
	if err != nil {
		return nil, err
	}
	return &router.FilterConfig{Config: v}, nil
}

func (r *Registry) perRouteNames() string {
	var out []string
	for _, n := range r.names {
		for _, f := range r.byPerRoute {
			if f.Name == n {
				out = append(out, n)
				break
			}
		}
	}
	return strings.Join(out, ", ")
}

// RouteOptions are the router compile options that compile typed_per_filter_config with this registry.
func (r *Registry) RouteOptions() router.Options { return router.Options{PerFilter: r.PerRoute} }

// Len is the number of filters before the router.
func (c *Chain) Len() int { return len(c.filters) }

// WantsBody reports whether a filter on the chain reads the request body.
func (c *Chain) WantsBody() bool { return c.wantsBody }

// WantsResponseBody reports whether a filter on the chain reads upstream answers' bodies.
func (c *Chain) WantsResponseBody() bool { return c.respBody }

// EncodeBody runs the response-body phase, last filter first, for the filters whose request phase ran.
func (c *Chain) EncodeBody(s *Stream, code int, h http.Header, body []byte) []byte {
	for i := len(c.filters) - 1; i >= 0; i-- {
		e := &c.filters[i]
		if e.encBody == nil || s.active&(1<<i) == 0 {
			continue
		}
		s.perRoute = s.PerRouteOf(e.name)
		body = e.encBody.EncodeBody(s, code, h, body)
	}
	return body
}

// Encodes reports whether a filter on the chain edits responses (see also Stream.Encodes).
func (c *Chain) Encodes() bool { return c.encoders }

// Counters lists the statistics the chain's filters keep.
func (c *Chain) Counters() []Counter { return c.counters }

// DecodeHeaders runs the filters' request phase in order; Stop means a
// filter replied (Stream.Reply) or abandoned the request, and the router
// must not run. A filter is skipped on a route whose most specific
// typed_per_filter_config entry for it is disabled, and a filter disabled in
// the HCM runs only where a route gives it an entry that is not.
func (c *Chain) DecodeHeaders(s *Stream) Status {
	for i := range c.filters {
		e := &c.filters[i]
		fc := s.lookup(e.name)
		switch {
		case fc != nil && fc.Disabled:
			continue
		case fc == nil && e.disabled:
			continue
		}
		s.perRoute = nil
		if fc != nil {
			s.perRoute = fc.Config
		}
		s.active |= 1 << i
		if e.filter.DecodeHeaders(s) == Stop {
			return Stop
		}
	}
	return Continue
}

// DecodeBody passes the buffered request body to the filters that asked for it, in order.
func (c *Chain) DecodeBody(s *Stream, body []byte) Status {
	if !c.wantsBody {
		return Continue
	}
	for i := range c.filters {
		e := &c.filters[i]
		if e.body == nil || s.active&(1<<i) == 0 {
			continue
		}
		s.perRoute = s.PerRouteOf(e.name)
		if e.body.DecodeBody(s, body) == Stop {
			return Stop
		}
	}
	return Continue
}

// EncodeHeaders runs the response phase, last filter first as Envoy does,
// for the filters whose request phase ran; h may be edited.
func (c *Chain) EncodeHeaders(s *Stream, code int, h http.Header) {
	for i := 0; i < s.addN; i++ {
		h.Set(s.add[i][0], s.add[i][1])
	}
	for _, kv := range s.addMore {
		h.Set(kv[0], kv[1])
	}
	if !c.encoders {
		return
	}
	for i := len(c.filters) - 1; i >= 0; i-- {
		e := &c.filters[i]
		if e.enc == nil || s.active&(1<<i) == 0 {
			continue
		}
		s.perRoute = s.PerRouteOf(e.name)
		e.enc.EncodeHeaders(s, code, h)
	}
}

// Completes reports whether a filter on the chain records finished requests.
func (c *Chain) Completes() bool { return c != nil && len(c.completers) > 0 }

// Complete tells the filters with a completion phase how the request ended.
// It runs for every request the chain saw, whichever filter answered it, as
// Envoy runs its filters' log callbacks.
func (c *Chain) Complete(s *Stream, d *Done) {
	for _, f := range c.completers {
		f.Complete(s, d)
	}
}
