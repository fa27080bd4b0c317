package proxyconfig

import (
	"fmt"
	"sort"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"mesh.dev/mesh/internal/configdump"
)

// BootstrapSummary is what a person looks for first in a proxy's bootstrap.
type BootstrapSummary struct {
	NodeID       string            `json:"nodeID"`
	Cluster      string            `json:"cluster"`
	IstioVersion string            `json:"istioVersion,omitempty"`
	EnvoyVersion string            `json:"envoyVersion,omitempty"`
	Admin        string            `json:"admin"`
	XDSServers   []string          `json:"xdsServers"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	resource     *configdump.Resource
}

// Source returns the resource the summary was made from.
func (b BootstrapSummary) Source() *configdump.Resource { return b.resource }

// Bootstrap summarises the dump's bootstrap; ok is false when the dump has none.
func Bootstrap(d *configdump.Dump) (BootstrapSummary, bool) {
	rs := d.Of(configdump.KindBootstrap)
	if len(rs) == 0 {
		return BootstrapSummary{}, false
	}
	b, _ := rs[0].Message.(*bootstrapv3.Bootstrap)
	s := BootstrapSummary{resource: rs[0], Metadata: map[string]string{}}
	node := b.GetNode()
	s.NodeID = orDash(node.GetId())
	s.Cluster = orDash(node.GetCluster())
	for k, v := range node.GetMetadata().GetFields() {
		// Only strings fit on a line; nested values are in -o yaml.
		if str := v.GetStringValue(); str != "" {
			s.Metadata[k] = str
		}
	}
	s.IstioVersion = s.Metadata["ISTIO_VERSION"]
	if v := node.GetUserAgentBuildVersion().GetVersion(); v != nil {
		s.EnvoyVersion = fmt.Sprintf("%d.%d.%d", v.GetMajorNumber(), v.GetMinorNumber(), v.GetPatch())
	} else if node.GetUserAgentVersion() != "" {
		s.EnvoyVersion = node.GetUserAgentVersion()
	}
	if a, p := socketAddress(b.GetAdmin().GetAddress()); a != "" {
		s.Admin = a
		if p != "" {
			s.Admin += ":" + p
		}
	}
	s.Admin = orDash(s.Admin)
	s.XDSServers = xdsServers(b)
	return s, true
}

// xdsServers lists the targets the proxy fetches dynamic config from: the
// ADS gRPC services, resolved to the addresses of their static clusters.
func xdsServers(b *bootstrapv3.Bootstrap) []string {
	addrs := map[string][]string{}
	for _, c := range b.GetStaticResources().GetClusters() {
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				if a, p := socketAddress(lb.GetEndpoint().GetAddress()); a != "" {
					if p != "" {
						a += ":" + p
					}
					addrs[c.GetName()] = append(addrs[c.GetName()], a)
				}
			}
		}
	}
	var out []string
	add := func(svcs []*corev3.GrpcService) {
		for _, g := range svcs {
			switch {
			case g.GetEnvoyGrpc() != nil:
				name := g.GetEnvoyGrpc().GetClusterName()
				if a := addrs[name]; len(a) > 0 {
					for _, x := range a {
						out = append(out, name+" ("+x+")")
					}
				} else {
					out = append(out, name)
				}
			case g.GetGoogleGrpc() != nil:
				out = append(out, g.GetGoogleGrpc().GetTargetUri())
			}
		}
	}
	dr := b.GetDynamicResources()
	add(dr.GetAdsConfig().GetGrpcServices())
	for _, src := range []*corev3.ConfigSource{dr.GetCdsConfig(), dr.GetLdsConfig()} {
		add(src.GetApiConfigSource().GetGrpcServices())
	}
	sort.Strings(out)
	out = dedupe(out)
	return out
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
