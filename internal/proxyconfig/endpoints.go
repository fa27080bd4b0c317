package proxyconfig

import (
	"sort"
	"strings"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"mesh.dev/mesh/internal/configdump"
)

// EndpointRow is one endpoint of one cluster in the endpoints table.
type EndpointRow struct {
	Endpoint     string `json:"endpoint"`
	Port         string `json:"port,omitempty"`
	Status       string `json:"status"`
	OutlierCheck string `json:"outlierCheck"`
	Cluster      string `json:"cluster"`
	resource     *configdump.Resource
}

// Source returns the resource the row was made from (nil for rows from /clusters).
func (r EndpointRow) Source() *configdump.Resource { return r.resource }

// Address is the row's ENDPOINT cell.
func (r EndpointRow) Address() string {
	if r.Port == "" {
		return r.Endpoint
	}
	return r.Endpoint + ":" + r.Port
}

// Endpoints lists endpoints. The proxy's /clusters output, when the dump
// came with it, is preferred: it carries live health and outlier state;
// otherwise the EDS assignments in the dump are used and the outlier check
// is unknown ("-").
func Endpoints(d *configdump.Dump, f Filter) []EndpointRow {
	var rows []EndpointRow
	if d.HostStatuses != nil {
		for _, cs := range d.HostStatuses.GetClusterStatuses() {
			for _, hs := range cs.GetHostStatuses() {
				addr, port := socketAddress(hs.GetAddress())
				h := hs.GetHealthStatus()
				status := h.GetEdsHealthStatus().String()
				if h.GetFailedActiveHealthCheck() {
					status = "UNHEALTHY"
				}
				outlier := "OK"
				if h.GetFailedOutlierCheck() {
					outlier = "FAILED"
				}
				rows = append(rows, EndpointRow{Endpoint: addr, Port: port, Status: status, OutlierCheck: outlier, Cluster: cs.GetName()})
			}
		}
	} else {
		for _, r := range d.Of(configdump.KindEndpoint) {
			cla, ok := r.Message.(*endpointv3.ClusterLoadAssignment)
			if !ok {
				continue
			}
			for _, le := range cla.GetEndpoints() {
				for _, lb := range le.GetLbEndpoints() {
					addr, port := socketAddress(lb.GetEndpoint().GetAddress())
					rows = append(rows, EndpointRow{Endpoint: orDash(addr), Port: port, Status: lb.GetHealthStatus().String(), OutlierCheck: "-", Cluster: cla.GetClusterName(), resource: r})
				}
			}
		}
	}
	out := rows[:0]
	for _, row := range rows {
		if contains(row.Endpoint, f.Address) && portIs(row.Port, f.Port) && contains(row.Cluster, f.Cluster) &&
			(f.Status == "" || strings.EqualFold(row.Status, f.Status)) {
			out = append(out, row)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Cluster != out[j].Cluster {
			return out[i].Cluster < out[j].Cluster
		}
		return out[i].Address() < out[j].Address()
	})
	return out
}
