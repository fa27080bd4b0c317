package proxyconfig

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"mesh.dev/mesh/internal/configdump"
)

// ListenerRow is one filter chain of a listener in the listeners table.
type ListenerRow struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	Port        string `json:"port"`
	Match       string `json:"match"`
	Destination string `json:"destination"`
	resource    *configdump.Resource
}

// Source returns the resource the row was made from.
func (r ListenerRow) Source() *configdump.Resource { return r.resource }

// AddressPort is the row's ADDRESS:PORT cell.
func (r ListenerRow) AddressPort() string {
	if r.Port == "" {
		return r.Address
	}
	return r.Address + ":" + r.Port
}

// Listeners summarises every filter chain of every listener, sorted by port then address.
func Listeners(d *configdump.Dump, f Filter) []ListenerRow {
	var rows []ListenerRow
	for _, r := range d.Of(configdump.KindListener) {
		l, ok := r.Message.(*listenerv3.Listener)
		if !ok {
			rows = append(rows, ListenerRow{Name: r.Name, Address: "-", Match: "-", Destination: "(not decoded)", resource: r})
			continue
		}
		addr, port := listenerAddress(l)
		base := ListenerRow{Name: r.Name, Address: addr, Port: port, resource: r}
		byMatcher := l.GetFilterChainMatcher() != nil
		for _, fc := range l.GetFilterChains() {
			row := base
			row.Match = describeChainMatch(fc, byMatcher)
			row.Destination = describeChainDestination(fc)
			rows = append(rows, row)
		}
		if dfc := l.GetDefaultFilterChain(); dfc != nil {
			row := base
			row.Match = "DEFAULT"
			row.Destination = describeChainDestination(dfc)
			rows = append(rows, row)
		}
		if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
			row := base
			row.Match, row.Destination = "ALL", "-"
			rows = append(rows, row)
		}
	}
	out := rows[:0]
	for _, row := range rows {
		if contains(row.Address, f.Address) && portIs(row.Port, f.Port) && contains(row.Name, f.Name) {
			out = append(out, row)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		pa, _ := strconv.Atoi(a.Port)
		pb, _ := strconv.Atoi(b.Port)
		if pa != pb {
			return pa < pb
		}
		if a.Address != b.Address {
			return a.Address < b.Address
		}
		return a.Name < b.Name
	})
	return out
}

// listenerAddress gives the address and port a listener binds; internal
// listeners have no socket, so they show as "internal" with their name in the NAME column.
func listenerAddress(l *listenerv3.Listener) (string, string) {
	addr, port := socketAddress(l.GetAddress())
	if addr == "" && l.GetInternalListener() != nil {
		return "internal", ""
	}
	for _, extra := range l.GetAdditionalAddresses() {
		if a, _ := socketAddress(extra.GetAddress()); a != "" {
			addr += "," + a
		}
	}
	if addr == "" {
		addr = "-"
	}
	return addr, port
}

func socketAddress(a *corev3.Address) (string, string) {
	switch {
	case a.GetSocketAddress() != nil:
		sa := a.GetSocketAddress()
		return sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10)
	case a.GetPipe() != nil:
		return "unix://" + a.GetPipe().GetPath(), ""
	case a.GetEnvoyInternalAddress() != nil:
		ia := a.GetEnvoyInternalAddress()
		s := "envoy://" + ia.GetServerListenerName()
		if ia.GetEndpointId() != "" {
			s += "/" + ia.GetEndpointId()
		}
		return s, ""
	}
	return "", ""
}

// describeChainMatch condenses a filter chain match into one cell.
func describeChainMatch(fc *listenerv3.FilterChain, byMatcher bool) string {
	m := fc.GetFilterChainMatch()
	if m == nil {
		if byMatcher && fc.GetName() != "" {
			// Chains picked by a filter_chain_matcher are known by name only.
			return "matcher: " + fc.GetName()
		}
		return "ALL"
	}
	var parts []string
	if p := m.GetDestinationPort(); p != nil {
		parts = append(parts, fmt.Sprintf("Port: %d", p.GetValue()))
	}
	if len(m.GetPrefixRanges()) > 0 {
		var cidrs []string
		for _, c := range m.GetPrefixRanges() {
			cidrs = append(cidrs, fmt.Sprintf("%s/%d", c.GetAddressPrefix(), c.GetPrefixLen().GetValue()))
		}
		parts = append(parts, "Addr: "+strings.Join(cidrs, ","))
	}
	if len(m.GetServerNames()) > 0 {
		parts = append(parts, "SNI: "+strings.Join(m.GetServerNames(), ","))
	}
	if m.GetTransportProtocol() != "" {
		parts = append(parts, "Trans: "+m.GetTransportProtocol())
	}
	if len(m.GetApplicationProtocols()) > 0 {
		parts = append(parts, "App: "+strings.Join(m.GetApplicationProtocols(), ","))
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, "; ")
}

// describeChainDestination says where a chain sends traffic: a route, a cluster or an inline route.
func describeChainDestination(fc *listenerv3.FilterChain) string {
	filters := fc.GetFilters()
	for _, f := range filters {
		switch f.GetTypedConfig().GetTypeUrl() {
		case "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager":
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
				continue
			}
			if rds := hcm.GetRds(); rds != nil {
				return "Route: " + rds.GetRouteConfigName()
			}
			if rc := hcm.GetRouteConfig(); rc != nil {
				if rc.GetName() != "" {
					return "Inline Route: " + rc.GetName()
				}
				return "Inline Route"
			}
			return "HTTP"
		case "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":
			var tp tcpv3.TcpProxy
			if f.GetTypedConfig().UnmarshalTo(&tp) != nil {
				continue
			}
			if c := tp.GetCluster(); c != "" {
				return "Cluster: " + c
			}
			var names []string
			for _, w := range tp.GetWeightedClusters().GetClusters() {
				names = append(names, w.GetName())
			}
			return "Clusters: " + strings.Join(names, ",")
		}
	}
	if len(filters) == 0 {
		return "-"
	}
	return "Filter: " + filters[len(filters)-1].GetName()
}
