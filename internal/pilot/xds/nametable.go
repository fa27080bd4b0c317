package xds

import (
	"net/netip"
	"strings"

	"mesh.dev/mesh/internal/nds"
)

// NameTableName is the name of the one NameTable a proxy is sent.
const NameTableName = ""

// nameTable is the NDS resource of a scope's proxies (Istio's name table
// for DNS proxying): every host the scope sees that has an address, so
// the proxy's DNS server answers what its Sidecar and exportTo let it
// reach and nothing else. A Kubernetes Service is given with its name and
// namespace, from which the proxy answers the search path's short forms.
// Left out: wildcard hosts (no name to answer), hosts without an address
// (headless Services, ServiceEntries without addresses unless
// auto-allocated: those the upstream resolver answers), and address
// ranges wider than one address.
func (pc *PushContext) nameTable(sc *scope) *item {
	return memo(&pc.mu, pc.nameTables, sc.key, func() *item {
		t := nds.Table{}
		for _, svc := range sc.services {
			if strings.HasPrefix(svc.Hostname, "*") || svc.Address == "" {
				continue
			}
			addr, ok := singleAddress(svc.Address)
			if !ok {
				continue
			}
			in := nds.Info{IPs: []string{addr}, Registry: nds.RegistryExternal}
			if !svc.ServiceEntry {
				in.Registry, in.Shortname, in.Namespace = nds.RegistryKubernetes, svc.Name, svc.Namespace
			}
			t[svc.Hostname] = in
		}
		return newItem(NameTableName, t.Message())
	})
}

// singleAddress reads an address, or a range of exactly one address.
func singleAddress(s string) (string, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String(), true
	}
	if p, err := netip.ParsePrefix(s); err == nil && p.IsSingleIP() {
		return p.Addr().String(), true
	}
	return "", false
}
