package validation

import (
	"net/netip"
	"strings"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

func validateWorkloadEntry(l *list, we *v1alpha3.WorkloadEntry, p string) {
	if we == nil {
		return
	}
	if we.Address == "" && we.Network == "" && p == "spec" {
		l.err(p+".address", "address is required unless network is set")
	}
	if we.Address != "" && !strings.HasPrefix(we.Address, "unix://") {
		if _, err := netip.ParseAddr(we.Address); err != nil {
			validateHost(l, we.Address, p+".address", false)
		}
	}
	for name, port := range we.Ports {
		validatePort(l, port, key(p+".ports", name))
	}
	validateLabels(l, we.Labels, p+".labels")
	if we.ServiceAccount != "" {
		for _, msg := range dns1123Subdomain(we.ServiceAccount) {
			l.err(p+".serviceAccount", "invalid service account %q: %s", we.ServiceAccount, msg)
		}
	}
}

func validateSidecar(l *list, o *networking.Sidecar) {
	s := &o.Spec
	if s.WorkloadSelector != nil {
		validateSelectorLabels(l, s.WorkloadSelector.Labels, "spec.workloadSelector.labels")
	}
	ports := map[uint32]bool{}
	for i, in := range s.Ingress {
		p := idx("spec.ingress", i)
		if in.Port != nil {
			validatePort(l, in.Port.Number, p+".port.number")
			validateProtocol(l, in.Port.Protocol, p+".port.protocol")
			if ports[in.Port.Number] {
				l.err(p+".port.number", "port %d has two ingress listeners", in.Port.Number)
			}
			ports[in.Port.Number] = true
		}
		if de := in.DefaultEndpoint; de != "" && !strings.HasPrefix(de, "unix://") {
			host, port, ok := strings.Cut(de, ":")
			if !ok || (host != "127.0.0.1" && host != "0.0.0.0" && host != "[::1]" && host != "[::]") {
				l.err(p+".defaultEndpoint", "%q must be 127.0.0.1:PORT, 0.0.0.0:PORT or unix://PATH", de)
			} else if port == "" {
				l.err(p+".defaultEndpoint", "%q has no port", de)
			}
		}
	}
	catchAll := -1
	for i, eg := range s.Egress {
		p := idx("spec.egress", i)
		if eg.Port == nil {
			if catchAll >= 0 {
				l.err(p, "only one egress listener may omit the port (spec.egress[%d] already does)", catchAll)
			}
			catchAll = i
		} else {
			validatePort(l, eg.Port.Number, p+".port.number")
			validateProtocol(l, eg.Port.Protocol, p+".port.protocol")
		}
		for j, h := range eg.Hosts {
			hp := idx(p+".hosts", j)
			ns, host, ok := strings.Cut(h, "/")
			if !ok {
				l.err(hp, "%q must be NAMESPACE/HOST: use \"./%s\" for this namespace or \"*/%s\" for any", h, h, h)
				continue
			}
			if ns != "." && ns != "*" && ns != "~" {
				for _, msg := range dns1123Label(ns) {
					l.err(hp, "invalid namespace %q in %q: %s", ns, h, msg)
				}
			}
			validateHost(l, host, hp, true)
		}
	}
	if catchAll >= 0 && catchAll != len(s.Egress)-1 {
		l.warn(idx("spec.egress", catchAll), "the egress listener without a port should come last")
	}
	if otp := s.OutboundTrafficPolicy; otp != nil && otp.EgressProxy != nil {
		ep := otp.EgressProxy
		if otp.Mode != v1alpha3.OutboundTrafficPolicy_ALLOW_ANY {
			l.err("spec.outboundTrafficPolicy.egressProxy", "an egress proxy takes unknown traffic only under mode ALLOW_ANY; set spec.outboundTrafficPolicy.mode: ALLOW_ANY or remove egressProxy")
		}
		if ep.Host == "" {
			l.err("spec.outboundTrafficPolicy.egressProxy.host", "the egress proxy's host is required (a service the Sidecar's egress hosts admit)")
		} else {
			validateHost(l, ep.Host, "spec.outboundTrafficPolicy.egressProxy.host", false)
		}
		if ep.GetPort().GetNumber() == 0 {
			l.err("spec.outboundTrafficPolicy.egressProxy.port.number", "the egress proxy's port is required")
		} else {
			validatePort(l, ep.Port.Number, "spec.outboundTrafficPolicy.egressProxy.port.number")
		}
	}
}
