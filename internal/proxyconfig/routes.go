package proxyconfig

import (
	"fmt"
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"mesh.dev/mesh/internal/configdump"
)

// RouteRow is one route of one virtual host in the routes table.
type RouteRow struct {
	Name           string `json:"name"`
	VirtualHost    string `json:"virtualHost"`
	Domains        string `json:"domains"`
	Match          string `json:"match"`
	VirtualService string `json:"virtualService"`
	resource       *configdump.Resource
}

// Source returns the resource the row was made from.
func (r RouteRow) Source() *configdump.Resource { return r.resource }

// Routes summarises every route of every route configuration, in dump order
// within a configuration and sorted by configuration name.
func Routes(d *configdump.Dump, f Filter) []RouteRow {
	var rows []RouteRow
	for _, r := range d.Of(configdump.KindRoute) {
		if !contains(r.Name, f.Name) {
			continue
		}
		rc, ok := r.Message.(*routev3.RouteConfiguration)
		if !ok {
			rows = append(rows, RouteRow{Name: r.Name, VirtualHost: "-", Domains: "-", Match: "(not decoded)", VirtualService: "-", resource: r})
			continue
		}
		if len(rc.GetVirtualHosts()) == 0 {
			rows = append(rows, RouteRow{Name: r.Name, VirtualHost: "-", Domains: "-", Match: "-", VirtualService: "-", resource: r})
		}
		for _, vh := range rc.GetVirtualHosts() {
			base := RouteRow{Name: r.Name, VirtualHost: vh.GetName(), Domains: describeDomains(vh.GetDomains()), resource: r}
			if len(vh.GetRoutes()) == 0 {
				row := base
				row.Match, row.VirtualService = "-", "-"
				rows = append(rows, row)
			}
			for _, rt := range vh.GetRoutes() {
				row := base
				row.Match = describeRouteMatch(rt.GetMatch())
				row.VirtualService = istioConfigRef(istioMetadata(rt.GetMetadata(), "config"))
				rows = append(rows, row)
			}
		}
	}
	rows = append(rows, genericRoutes(d, f)...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	return rows
}

// describeDomains keeps the cell short: a few domains, then a count.
func describeDomains(ds []string) string {
	switch len(ds) {
	case 0:
		return "-"
	case 1, 2:
		return strings.Join(ds, ", ")
	default:
		return fmt.Sprintf("%s, %s +%d more", ds[0], ds[1], len(ds)-2)
	}
}

func describeRouteMatch(m *routev3.RouteMatch) string {
	var s string
	switch {
	case m == nil:
		return "-"
	case m.GetConnectMatcher() != nil:
		s = "CONNECT"
	case m.GetSafeRegex() != nil:
		s = "regex " + m.GetSafeRegex().GetRegex()
	case m.GetPathSeparatedPrefix() != "":
		s = strings.TrimSuffix(m.GetPathSeparatedPrefix(), "/") + "/*"
	case m.GetPath() != "":
		s = m.GetPath()
	case m.GetPathMatchPolicy() != nil:
		s = "policy " + m.GetPathMatchPolicy().GetName()
	default:
		s = m.GetPrefix() + "*"
	}
	for _, h := range m.GetHeaders() {
		s += " [" + h.GetName() + "]"
	}
	return s
}
