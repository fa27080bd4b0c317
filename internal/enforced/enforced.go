// Package enforced holds the field accounting of the Istio kinds the mesh
// accepts: for every field path of their specs, whether pilot and
// mesh-proxy carry it out. Pilot fails closed on security kinds from it,
// and analyze (MSH0003) and pilot's status writer report the set fields it
// says are not enforced.
package enforced

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	telemetryapi "istio.io/api/telemetry/v1alpha1"
)

// ConditionType is the status condition pilot sets False on a resource
// with set fields the mesh does not carry out, naming them.
const ConditionType = "mesh.io/Enforced"

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
	ip := []byte("spec")
	walk(kind, spec.ProtoReflect(), rootInfo(kind, "spec"), &ip, &out)
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
	if vs, ok := spec.(*networkingapi.VirtualService); ok {
		out = append(out, l4SourceValues(vs)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Fields lists the set fields of m, a message at path (no indices) in kind,
// that the mesh does not carry out or no entry covers; prefix is where m
// sits, with indices.
func Fields(kind, path, prefix string, m protoreflect.Message) []Finding {
	var out []Finding
	ip := []byte(prefix)
	walk(kind, m, rootInfo(kind, path), &ip, &out)
	return out
}

const unknownNote = "not known to this mesh, so not carried out"

// pathInfo is what the table says of one field path. The walk visits the
// same few hundred paths for every resource, so each is worked out once:
// analyze walks every spec of its input, and per field the string building
// and table scans were a sixth of a 10k-resource analysis.
type pathInfo struct {
	path       string
	entry      Entry
	known      bool // an entry covers the path
	exact      bool // the entry is the path's own
	knownChild bool // an entry exists below the path
	// kids caches the paths of this message's fields, by field number:
	// looking a child up hashes a number, not the kind and path.
	kids sync.Map // protoreflect.FieldNumber -> *pathInfo
	// quiet says no field at or below this message can give a finding
	// (every one is classified and carried out), so a walk skips it.
	quietOnce sync.Once
	quiet     bool
}

// isQuiet reports whether a walk of a message of type md at node in can
// find nothing, whatever is set: it then need not look. Most of a
// VirtualService or DestinationRule is such subtrees.
func (in *pathInfo) isQuiet(kind string, md protoreflect.MessageDescriptor, depth int) bool {
	in.quietOnce.Do(func() { in.quiet = quietBelow(kind, in, md, depth) })
	return in.quiet
}

func quietBelow(kind string, in *pathInfo, md protoreflect.MessageDescriptor, depth int) bool {
	if depth > 20 {
		return false // deep or recursive types are walked
	}
	fields := md.Fields()
	for i, n := 0, fields.Len(); i < n; i++ {
		fd := fields.Get(i)
		kid := infoOf(kind, in, fd)
		if !kid.known || !kid.entry.Enforced {
			return false
		}
		child := fd.Message()
		if fd.IsMap() {
			child = fd.MapValue().Message()
		}
		if child != nil && child.FullName().Parent() != "google.protobuf" && !kid.isQuiet(kind, child, depth+1) {
			return false
		}
	}
	return true
}

type rootKey struct{ kind, path string }

var roots sync.Map // rootKey -> *pathInfo

// rootInfo is the node of the message at path (no indices) in kind, where
// a walk starts.
func rootInfo(kind, path string) *pathInfo {
	k := rootKey{kind, path}
	if v, ok := roots.Load(k); ok {
		return v.(*pathInfo)
	}
	v, _ := roots.LoadOrStore(k, &pathInfo{path: path})
	return v.(*pathInfo)
}

func infoOf(kind string, parent *pathInfo, fd protoreflect.FieldDescriptor) *pathInfo {
	if v, ok := parent.kids.Load(fd.Number()); ok {
		return v.(*pathInfo)
	}
	p := parent.path + "." + fd.JSONName()
	e, known := Lookup(kind, p)
	_, exact := table[kind][p]
	in := &pathInfo{path: p, entry: e, known: known, exact: exact, knownChild: hasKnownChild(kind, p)}
	v, _ := parent.kids.LoadOrStore(fd.Number(), in)
	return v.(*pathInfo)
}

// walk appends to out the findings under m, whose node is parent; ip
// holds the path with indices and is restored before walk returns. It
// visits the set fields by index rather than through Range, whose
// callback would be allocated for every message walked.
func walk(kind string, m protoreflect.Message, parent *pathInfo, ip *[]byte, out *[]Finding) {
	md := m.Descriptor()
	if parent.isQuiet(kind, md, 0) {
		return
	}
	fields := md.Fields()
	for i, n := 0, fields.Len(); i < n; i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		mark := len(*ip)
		walkField(kind, m.Get(fd), fd, infoOf(kind, parent, fd), ip, out)
		*ip = (*ip)[:mark]
	}
}

// walkField appends the findings of one set field, v, of node in.
func walkField(kind string, v protoreflect.Value, fd protoreflect.FieldDescriptor, in *pathInfo, ip *[]byte, out *[]Finding) {
	*ip = append(append(*ip, '.'), fd.JSONName()...)
	// An entry for an ancestor covers this field only where no entry
	// below it says more (Sidecar's spec note and its enforced
	// egress.hosts): then the walk goes on down.
	covered := in.known && !in.entry.Enforced && (in.exact || !in.knownChild)
	child := fd.Message()
	if fd.IsMap() {
		child = fd.MapValue().Message()
	}
	leaf := child == nil || child.FullName().Parent() == "google.protobuf"
	switch {
	case covered:
		*out = append(*out, Finding{Path: string(*ip), Note: in.entry.Note})
		return
	case leaf && !in.known:
		*out = append(*out, Finding{Path: string(*ip), Note: unknownNote})
		return
	case leaf:
		return
	}
	switch {
	case fd.IsMap():
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			at := len(*ip)
			*ip = append(append(append(*ip, '['), k.String()...), ']')
			walk(kind, mv.Message(), in, ip, out)
			*ip = (*ip)[:at]
			return true
		})
	case fd.IsList():
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			at := len(*ip)
			*ip = append(strconv.AppendInt(append(*ip, '['), int64(i), 10), ']')
			walk(kind, l.Get(i).Message(), in, ip, out)
			*ip = (*ip)[:at]
		}
	default:
		before := len(*out)
		walk(kind, v.Message(), in, ip, out)
		// A set message with no set fields (`corsPolicy: {}`) under an
		// unclassified path still means something to its author.
		if len(*out) == before && !in.known && !in.knownChild {
			*out = append(*out, Finding{Path: string(*ip), Note: unknownNote})
		}
	}
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

// l4SourceValues reports the source matches of tls and tcp rules that
// apply at gateways only (the match's gateways, else the VirtualService's,
// do not include mesh): istiod matches sourceLabels and sourceNamespace
// on sidecars alone, so at a gateway the match applies to every client.
func l4SourceValues(vs *networkingapi.VirtualService) []Finding {
	var out []Finding
	meshBound := func(gws []string) bool {
		if len(gws) == 0 {
			gws = vs.GetGateways()
		}
		return len(gws) == 0 || slices.Contains(gws, "mesh")
	}
	const note = "matched on sidecars only, as in Istio: this match applies at gateways alone (its gateways do not include mesh), where it admits every client"
	report := func(kind string, i, j int, labels map[string]string, ns string, gws []string) {
		if meshBound(gws) {
			return
		}
		if len(labels) > 0 {
			out = append(out, Finding{Path: fmt.Sprintf("spec.%s[%d].match[%d].sourceLabels", kind, i, j), Note: note})
		}
		if ns != "" {
			out = append(out, Finding{Path: fmt.Sprintf("spec.%s[%d].match[%d].sourceNamespace", kind, i, j), Note: note})
		}
	}
	for i, r := range vs.GetTls() {
		for j, m := range r.GetMatch() {
			report("tls", i, j, m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways())
		}
	}
	for i, r := range vs.GetTcp() {
		for j, m := range r.GetMatch() {
			report("tcp", i, j, m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways())
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
