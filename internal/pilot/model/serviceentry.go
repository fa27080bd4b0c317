package model

import (
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// fromServiceEntry turns each host of a ServiceEntry into a Service.
func fromServiceEntry(se *networkingv1.ServiceEntry) []*Service {
	var out []*Service
	spec := &se.Spec
	for i, host := range spec.Hosts {
		svc := &Service{
			Hostname:     host,
			Name:         se.Name,
			Namespace:    se.Namespace,
			MeshExternal: spec.Location != networkingapi.ServiceEntry_MESH_INTERNAL,
			ExportTo:     spec.ExportTo,
			ServiceEntry: true,
		}
		if spec.WorkloadSelector != nil {
			svc.Selector = spec.WorkloadSelector.Labels
		}
		if len(spec.Addresses) == len(spec.Hosts) {
			svc.Address = spec.Addresses[i]
		} else if len(spec.Addresses) == 1 {
			svc.Address = spec.Addresses[0]
		}
		switch spec.Resolution {
		case networkingapi.ServiceEntry_DNS, networkingapi.ServiceEntry_DNS_ROUND_ROBIN:
			svc.Resolution = ResolutionDNS
		case networkingapi.ServiceEntry_NONE:
			svc.Resolution = ResolutionPassthrough
		default:
			svc.Resolution = ResolutionEndpoints
		}
		for _, p := range spec.Ports {
			svc.Ports = append(svc.Ports, Port{
				Name:       p.Name,
				Port:       p.Number,
				TargetPort: p.TargetPort,
				Protocol:   ParseProtocol(p.Number, p.Protocol, p.Name),
			})
		}
		out = append(out, svc)
	}
	return out
}

// addServiceEntryEndpoints adds the inline endpoints of se, the workload
// entries its workloadSelector picks, and — for DNS resolution without
// endpoints — the hosts themselves.
func (s *Snapshot) addServiceEntryEndpoints(se *networkingv1.ServiceEntry, wes []*networkingv1.WorkloadEntry) {
	for _, host := range se.Spec.Hosts {
		svc := s.servicesByHost[host]
		if svc == nil || svc.Namespace != se.Namespace || svc.Name != se.Name {
			continue
		}
		var eps []*Endpoint
		for _, we := range se.Spec.Endpoints {
			eps = append(eps, workloadEndpoints(svc, se.Namespace, se.Name, we)...)
		}
		if se.Spec.WorkloadSelector != nil {
			sel := labels.SelectorFromSet(se.Spec.WorkloadSelector.Labels)
			for _, we := range wes {
				if we.Namespace == se.Namespace && sel.Matches(labels.Set(we.Spec.Labels)) {
					eps = append(eps, workloadEndpoints(svc, we.Namespace, we.Name, &we.Spec)...)
				}
			}
		}
		if len(eps) == 0 && svc.Resolution == ResolutionDNS {
			for _, p := range svc.Ports {
				port := p.Port
				if p.TargetPort != 0 {
					port = p.TargetPort
				}
				eps = append(eps, &Endpoint{Address: host, Port: port, ServicePort: p.Port, Namespace: se.Namespace, Ready: true})
			}
		}
		s.endpoints[host] = append(s.endpoints[host], eps...)
	}
}

// addWorkloadEntryEndpoints adds workload entries to the Kubernetes services
// in their namespace whose selector matches them: VMs joining a Service.
func (s *Snapshot) addWorkloadEntryEndpoints(wes []*networkingv1.WorkloadEntry) {
	for _, we := range wes {
		for _, svc := range s.ServicesFor(we.Namespace, we.Spec.Labels) {
			if !isKubeService(svc) {
				continue
			}
			s.endpoints[svc.Hostname] = append(s.endpoints[svc.Hostname], workloadEndpoints(svc, we.Namespace, we.Name, &we.Spec)...)
		}
	}
}

func isKubeService(svc *Service) bool {
	return svc.Hostname == KubeHostname(svc.Name, svc.Namespace)
}

func workloadEndpoints(svc *Service, ns, name string, we *networkingapi.WorkloadEntry) []*Endpoint {
	if we.Address == "" {
		return nil
	}
	var out []*Endpoint
	for _, p := range svc.Ports {
		port := p.Port
		if p.TargetPort != 0 {
			port = p.TargetPort
		}
		if n, ok := we.Ports[p.Name]; ok && p.Name != "" {
			port = n
		}
		sa := we.ServiceAccount
		if sa == "" {
			sa = "default"
		}
		out = append(out, &Endpoint{
			Address:        we.Address,
			Port:           port,
			ServicePort:    p.Port,
			Labels:         we.Labels,
			ServiceAccount: sa,
			Namespace:      ns,
			Workload:       name,
			Ready:          true,
		})
	}
	return out
}
