package peermeta

import (
	"fmt"
	"net/http"

	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/proxy/httpfilter"
)

// ConfigType is the type of Istio's peer metadata HTTP filter config
// (io.istio.http.peer_metadata.Config), which istiod sends in a TypedStruct
// since its protobuf is not published.
const ConfigType = "type.googleapis.com/io.istio.http.peer_metadata.Config"

// FilterName is the name istiod gives the filter.
const FilterName = "istio.metadata_exchange"

// The request's filter state keys (Istio's) under which the filter leaves the peers it found, as *Node.
const (
	DownstreamKey = "downstream_peer"
	UpstreamKey   = "upstream_peer"
)

// Factory is the peer metadata HTTP filter of a proxy whose own metadata is self.
func Factory(self *Node) httpfilter.Factory {
	c := &cache{}
	return httpfilter.Factory{
		Name:        FilterName,
		ConfigTypes: []string{ConfigType},
		New: func(cfg httpfilter.Config) (httpfilter.Filter, error) {
			f := &filter{self: self, cache: c}
			if err := f.configure(cfg.Struct, cfg.Field); err != nil {
				return nil, err
			}
			return f, nil
		},
	}
}

type filter struct {
	self                        *Node
	cache                       *cache
	downDiscover, downPropagate bool
	upDiscover, upPropagate     bool
}

// configure reads the config's four lists: discovery (read the peer's
// metadata) and propagation (send ours), downstream and upstream. Each lists
// methods: istio_headers is carried out; workload_discovery (looking the
// peer up by address in the workload discovery service, which istiod lists
// after istio_headers as a fallback) finds nothing here.
func (f *filter) configure(s *structpb.Struct, field string) error {
	for k, v := range s.GetFields() {
		var disc, prop *bool
		switch k {
		case "downstream_discovery":
			disc = &f.downDiscover
		case "upstream_discovery":
			disc = &f.upDiscover
		case "downstream_propagation":
			prop = &f.downPropagate
		case "upstream_propagation":
			prop = &f.upPropagate
		case "shared_with_upstream", "additional_labels":
			// Filter state sharing and extra labels concern proxies chained in one process; nothing to do.
			continue
		default:
			return fmt.Errorf("%s.%s: field not supported (supported: downstream_discovery, upstream_discovery, downstream_propagation, upstream_propagation)", field, k)
		}
		for i, m := range v.GetListValue().GetValues() {
			for method := range m.GetStructValue().GetFields() {
				switch method {
				case "istio_headers":
					if disc != nil {
						*disc = true
					} else {
						*prop = true
					}
				case "workload_discovery":
					if prop != nil {
						return fmt.Errorf("%s.%s[%d]: workload_discovery is a discovery method", field, k, i)
					}
				default:
					return fmt.Errorf("%s.%s[%d]: method %q not supported (supported: istio_headers, workload_discovery)", field, k, i, method)
				}
			}
		}
	}
	return nil
}

// The headers' keys as http.Header holds them, so a request's lookups do
// not canonicalize (and allocate) each time.
var (
	keyMetadata = http.CanonicalHeaderKey(HeaderMetadata)
	keyID       = http.CanonicalHeaderKey(HeaderID)
)

func headerValue(h http.Header, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// tell puts this proxy's metadata on h, both values in one allocation.
func (f *filter) tell(h http.Header) {
	vals := make([]string, 2)
	vals[0], vals[1] = f.self.Header(), f.self.ID
	h[keyMetadata] = vals[0:1:1]
	h[keyID] = vals[1:2:2]
}

// DecodeHeaders takes the downstream peer's metadata off the request
// (never passing it on to the app) and puts ours on requests going upstream.
func (f *filter) DecodeHeaders(s *httpfilter.Stream) httpfilter.Status {
	h := s.Request.Header
	if f.downDiscover {
		if v := headerValue(h, keyMetadata); v != "" {
			if n, err := f.cache.get(v, headerValue(h, keyID)); err == nil {
				s.Meta().Set(DownstreamKey, n)
			}
			delete(h, keyMetadata)
		}
		delete(h, keyID)
	}
	if f.upPropagate {
		f.tell(h)
	}
	return httpfilter.Continue
}

// EncodeHeaders takes the upstream peer's metadata off the response and
// answers a meshed downstream (one that sent its own) with ours.
func (f *filter) EncodeHeaders(s *httpfilter.Stream, _ int, h http.Header) {
	if f.upDiscover {
		if v := headerValue(h, keyMetadata); v != "" {
			if n, err := f.cache.get(v, headerValue(h, keyID)); err == nil {
				s.Meta().Set(UpstreamKey, n)
			}
			delete(h, keyMetadata)
		}
		delete(h, keyID)
	}
	if f.downPropagate && s.Meta().Get(DownstreamKey) != nil {
		f.tell(h)
	}
}
