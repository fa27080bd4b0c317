package istiostats

import (
	"net"
	"strings"

	"mesh.dev/mesh/internal/proxy/cluster"
	"mesh.dev/mesh/internal/proxy/peermeta"
	meshtls "mesh.dev/mesh/internal/proxy/tls"
)

const unknown = "unknown"

// exchange is one request or connection as the labels see it.
type exchange struct {
	inbound       bool           // reporter destination (a sidecar's inbound side); else source
	peer          *peermeta.Node // the other proxy's metadata; nil when none came
	peerPrincipal string         // the downstream's SPIFFE id from its certificate (inbound)
	mtls          bool           // the downstream connection is mutual TLS (inbound)
	svc           service
	proto         string // http, grpc or tcp
	code          string
	grpc          string
	flags         string
}

// service is the destination service of a request.
type service struct {
	host, name, namespace string
}

// standard computes the standard labels' values, in Labels' order, as
// Istio's stats filter defines them.
func (r *Recorder) standard(x *exchange) *[25]string {
	self, peer := r.Self, x.peer
	var out [25]string
	src, dst := peer, self
	srcPrincipal, dstPrincipal := or(x.peerPrincipal, peer.Principal(r.trustDomain(x.peerPrincipal))), self.Principal(r.trustDomain(x.peerPrincipal))
	security := "none"
	if x.mtls {
		security = "mutual_tls"
	}
	out[0] = "destination"
	if !x.inbound {
		out[0] = "source"
		src, dst = self, peer
		srcPrincipal, dstPrincipal = self.Principal(r.TrustDomain), peer.Principal(r.TrustDomain)
		security = unknown
	}
	srcNS, dstNS := namespaceOf(src), namespaceOf(dst)
	if src == peer && srcNS == "" {
		srcNS = meshtls.SpiffeNamespace(x.peerPrincipal)
	}
	if dst == peer && dstNS == "" {
		dstNS = x.svc.namespace
	}
	fill := func(at int, n *peermeta.Node, ns, principal string) {
		if n == nil {
			n = &peermeta.Node{}
		}
		out[at] = or(n.Workload(), unknown)
		out[at+1] = or(ns, unknown)
		out[at+2] = or(principal, unknown)
		out[at+3] = or(n.App(), unknown)
		out[at+4] = or(n.Version(), unknown)
	}
	canon := func(at int, n *peermeta.Node) {
		if n == nil || n.Workload() == "" && n.Labels == nil {
			out[at], out[at+1], out[at+2] = unknown, "latest", unknown
			return
		}
		out[at], out[at+1], out[at+2] = n.CanonicalService(), n.CanonicalRevision(), or(n.ClusterID, unknown)
	}
	fill(1, src, srcNS, srcPrincipal)
	canon(6, src)
	fill(9, dst, dstNS, dstPrincipal)
	out[14], out[15], out[16] = or(x.svc.host, unknown), or(x.svc.name, unknown), or(x.svc.namespace, unknown)
	canon(17, dst)
	out[20], out[21], out[22], out[23], out[24] = x.proto, x.code, x.grpc, x.flags, security
	return &out
}

func namespaceOf(n *peermeta.Node) string {
	if n == nil {
		return ""
	}
	return n.Namespace
}

// trustDomain is the trust domain of a principal, else the recorder's.
func (r *Recorder) trustDomain(principal string) string {
	if rest, ok := strings.CutPrefix(principal, "spiffe://"); ok {
		if td, _, ok := strings.Cut(rest, "/"); ok && td != "" {
			return td
		}
	}
	return r.TrustDomain
}

// clusterService is the service a cluster serves: Istio's cluster metadata
// (istio.services, the first entry), else the host of an Istio cluster name
// (outbound|port|subset|host). ok is false when neither says, and the Host
// header decides.
func clusterService(c *cluster.Cluster, name string) (service, bool) {
	if c != nil {
		if s := c.Proto.GetMetadata().GetFilterMetadata()["istio"].GetFields()["services"].GetListValue().GetValues(); len(s) > 0 {
			f := s[0].GetStructValue().GetFields()
			if h := f["host"].GetStringValue(); h != "" {
				return service{host: h, name: or(f["name"].GetStringValue(), h), namespace: f["namespace"].GetStringValue()}, true
			}
		}
	}
	parts := strings.Split(name, "|")
	if len(parts) == 4 && parts[3] != "" {
		return hostService(parts[3]), true
	}
	return service{}, false
}

// hostService splits a host name: name.namespace.svc.<domain>, or a bare host.
func hostService(h string) service {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	s := service{host: h, name: h}
	if parts := strings.Split(h, "."); len(parts) >= 3 && parts[2] == "svc" {
		s.name, s.namespace = parts[0], parts[1]
	}
	return s
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
