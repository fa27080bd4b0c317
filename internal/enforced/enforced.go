// Package enforced holds the field accounting of the Istio kinds the mesh
// accepts: for every field path of their specs, whether pilot and
// mesh-proxy carry it out. Pilot fails closed on security kinds from it,
// and analyze (MSH0003) and pilot's status writer report the set fields it
// says are not enforced.
package enforced

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
)

// Entry classifies one field path.
type Entry struct {
	Enforced bool
	Note     string // what the mesh does instead (not enforced), or a limit (enforced)
}

// Finding is one set field, or one value, the mesh does not carry out.
type Finding struct {
	Path string // with indices and map keys: spec.http[0].corsPolicy
	Note string
}

func (f Finding) String() string { return f.Path + ": " + f.Note }

// Specs are the spec messages of the accepted kinds, by kind.
var Specs = map[string]proto.Message{
	"VirtualService":        &networkingapi.VirtualService{},
	"DestinationRule":       &networkingapi.DestinationRule{},
	"Gateway":               &networkingapi.Gateway{},
	"ServiceEntry":          &networkingapi.ServiceEntry{},
	"Sidecar":               &networkingapi.Sidecar{},
	"WorkloadEntry":         &networkingapi.WorkloadEntry{},
	"PeerAuthentication":    &securityapi.PeerAuthentication{},
	"AuthorizationPolicy":   &securityapi.AuthorizationPolicy{},
	"RequestAuthentication": &securityapi.RequestAuthentication{},
	"Telemetry":             &telemetryapi.Telemetry{},
}

// Entries returns a copy of the entries of a kind, by field path.
func Entries(kind string) map[string]Entry {
	out := make(map[string]Entry, len(table[kind]))
	for p, e := range table[kind] {
		out[p] = e
	}
	return out
}

// Lookup classifies a field path (no indices: spec.http.corsPolicy). A
// path under a not-enforced field inherits it; ok is false for a path no
// entry covers.
func Lookup(kind, path string) (Entry, bool) {
	t := table[kind]
	if t == nil {
		return Entry{}, false
	}
	if e, ok := t[path]; ok {
		return e, true
	}
	for p := path; ; {
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			return Entry{}, false
		}
		p = p[:i]
		if e, ok := t[p]; ok && !e.Enforced {
			return e, true
		}
	}
}

// Unenforced lists the set fields of spec (a kind's spec message) that the
// mesh does not carry out, and for AuthorizationPolicy the actions and
// `when` keys it does not. A field no entry covers (one a newer istio.io/api
// added) is reported as not known.
func Unenforced(kind string, spec proto.Message) []Finding {
	var out []Finding
	walk(kind, spec.ProtoReflect(), "spec", "spec", &out)
	if ap, ok := spec.(*securityapi.AuthorizationPolicy); ok {
		for i := range out {
			if strings.HasPrefix(out[i].Path, "spec.rules[") {
				out[i].Note += consequence(ap)
			}
		}
		out = append(out, authzValues(ap)...)
	}
	if gw, ok := spec.(*networkingapi.Gateway); ok {
		out = append(out, gatewayValues(gw)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Fields lists the set fields of m, a message at path (no indices) in kind,
// that the mesh does not carry out or no entry covers; prefix is where m
// sits, with indices.
func Fields(kind, path, prefix string, m protoreflect.Message) []Finding {
	var out []Finding
	walk(kind, m, path, prefix, &out)
	return out
}

const unknownNote = "not known to this mesh, so not carried out"

func walk(kind string, m protoreflect.Message, path, ipath string, out *[]Finding) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p, ip := path+"."+fd.JSONName(), ipath+"."+fd.JSONName()
		e, known := Lookup(kind, p)
		// An entry for an ancestor covers this field only where no entry
		// below it says more (Sidecar's spec note and its enforced
		// egress.hosts): then the walk goes on down.
		_, exact := table[kind][p]
		covered := known && !e.Enforced && (exact || !hasKnownChild(kind, p))
		child := fd.Message()
		if fd.IsMap() {
			child = fd.MapValue().Message()
		}
		leaf := child == nil || child.FullName().Parent() == "google.protobuf"
		switch {
		case covered:
			*out = append(*out, Finding{Path: ip, Note: e.Note})
			return true
		case leaf && !known:
			*out = append(*out, Finding{Path: ip, Note: unknownNote})
			return true
		case leaf:
			return true
		}
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				walk(kind, mv.Message(), p, ip+"["+k.String()+"]", out)
				return true
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walk(kind, l.Get(i).Message(), p, ip+"["+strconv.Itoa(i)+"]", out)
			}
		default:
			before := len(*out)
			walk(kind, v.Message(), p, ip, out)
			// A set message with no set fields (`corsPolicy: {}`) under an
			// unclassified path still means something to its author.
			if len(*out) == before && !known && !hasKnownChild(kind, p) {
				*out = append(*out, Finding{Path: ip, Note: unknownNote})
			}
		}
		return true
	})
}

func hasKnownChild(kind, path string) bool {
	for p := range table[kind] {
		if strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// authzValues reports the AuthorizationPolicy values the field table
// cannot: `when` keys the mesh does not carry out. (Every action is: AUDIT
// marks what it matches for the access log, as Istio's does.)
func authzValues(ap *securityapi.AuthorizationPolicy) []Finding {
	var out []Finding
	for i, r := range ap.GetRules() {
		for j, c := range r.GetWhen() {
			if ci := Condition(c.GetKey()); !ci.Enforced {
				out = append(out, Finding{Path: fmt.Sprintf("spec.rules[%d].when[%d].key", i, j),
					Note: fmt.Sprintf("%s %s", c.GetKey(), ci.Why) + consequence(ap)})
			}
		}
	}
	return out
}

// gatewayValues reports the Gateway servers the field table cannot: a
// protocol gateways do not serve, and an HTTPS or TLS server without tls
// settings (istiod rejects it); pilot builds no listener for either.
func gatewayValues(gw *networkingapi.Gateway) []Finding {
	var out []Finding
	for i, s := range gw.GetServers() {
		proto := strings.ToUpper(s.GetPort().GetProtocol())
		switch proto {
		case "HTTP", "HTTP2", "GRPC", "TCP", "MONGO", "REDIS", "MYSQL":
		case "HTTPS", "TLS":
			if s.GetTls() == nil {
				out = append(out, Finding{Path: fmt.Sprintf("spec.servers[%d].tls", i),
					Note: proto + " servers need tls settings (mode and certificate, or PASSTHROUGH): the server is not served"})
			}
		default:
			out = append(out, Finding{Path: fmt.Sprintf("spec.servers[%d].port.protocol", i),
				Note: fmt.Sprintf("protocol %q is not served by gateways (HTTP, HTTPS, HTTP2, GRPC, TLS, TCP, MONGO, REDIS, MYSQL are): the server is not served", s.GetPort().GetProtocol())})
		}
	}
	return out
}

func consequence(ap *securityapi.AuthorizationPolicy) string {
	switch ap.GetAction() {
	case securityapi.AuthorizationPolicy_ALLOW:
		return ": the rule allows nobody"
	case securityapi.AuthorizationPolicy_AUDIT:
		return ": the condition is dropped, so the rule audits more"
	}
	return ": the condition is dropped, so the rule denies more"
}
