package validation

import (
	"net/netip"
	"strings"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

func validateServiceEntry(l *list, o *networking.ServiceEntry) {
	s := &o.Spec
	for i, h := range s.Hosts {
		p := idx("spec.hosts", i)
		if h == "*" {
			l.err(p, "a ServiceEntry cannot use the host \"*\"")
			continue
		}
		validateHost(l, h, p, true)
		if strings.HasPrefix(h, "*") && s.Resolution == v1alpha3.ServiceEntry_DNS && len(s.Endpoints) == 0 {
			l.err(p, "wildcard host %q cannot be resolved with DNS resolution and no endpoints", h)
		}
	}
	for i, a := range s.Addresses {
		if _, err := netip.ParseAddr(a); err == nil {
			continue
		}
		if _, err := netip.ParsePrefix(a); err != nil {
			l.err(idx("spec.addresses", i), "%q is not an IP address or CIDR block", a)
		}
	}
	numbers, names := map[uint32]bool{}, map[string]bool{}
	for i, port := range s.Ports {
		p := idx("spec.ports", i)
		if port.Number != 0 {
			validatePort(l, port.Number, p+".number")
		}
		if port.TargetPort != 0 {
			validatePort(l, port.TargetPort, p+".targetPort")
		}
		validateProtocol(l, port.Protocol, p+".protocol")
		validatePortName(l, port.Name, p+".name")
		if numbers[port.Number] && port.Number != 0 {
			l.err(p+".number", "port %d is listed twice", port.Number)
		}
		if names[port.Name] && port.Name != "" {
			l.err(p+".name", "port name %q is used twice", port.Name)
		}
		numbers[port.Number], names[port.Name] = true, true
	}
	validateExportTo(l, s.ExportTo, "spec.exportTo")
	if s.WorkloadSelector != nil && len(s.Endpoints) > 0 {
		l.err("spec.workloadSelector", "workloadSelector and endpoints cannot both be set")
	}
	if s.WorkloadSelector != nil {
		validateSelectorLabels(l, s.WorkloadSelector.Labels, "spec.workloadSelector.labels")
	}
	for i, ep := range s.Endpoints {
		p := idx("spec.endpoints", i)
		validateWorkloadEntry(l, ep, p)
		if s.Resolution == v1alpha3.ServiceEntry_STATIC && ep.Address != "" && !strings.HasPrefix(ep.Address, "unix://") {
			if _, err := netip.ParseAddr(ep.Address); err != nil {
				l.err(p+".address", "STATIC resolution needs IP addresses, got %q", ep.Address)
			}
		}
		for name := range ep.Ports {
			if !names[name] {
				l.err(key(p+".ports", name), "port name %q is not one of spec.ports", name)
			}
		}
	}
	switch s.Resolution {
	case v1alpha3.ServiceEntry_NONE:
		if len(s.Endpoints) > 0 {
			l.err("spec.endpoints", "resolution NONE takes no endpoints: use STATIC or DNS")
		}
	case v1alpha3.ServiceEntry_STATIC:
		if len(s.Endpoints) == 0 && s.WorkloadSelector == nil {
			l.warn("spec.endpoints", "STATIC resolution with no endpoints and no workloadSelector sends traffic nowhere")
		}
	}
}
