package proxyconfig

import (
	"sort"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"mesh.dev/mesh/internal/configdump"
)

// ClusterRow is one cluster in the clusters table.
type ClusterRow struct {
	Name            string `json:"name"`
	FQDN            string `json:"fqdn"`
	Port            string `json:"port"`
	Subset          string `json:"subset"`
	Direction       string `json:"direction"`
	Type            string `json:"type"`
	DestinationRule string `json:"destinationRule"`
	resource        *configdump.Resource
}

// Source returns the resource the row was made from.
func (r ClusterRow) Source() *configdump.Resource { return r.resource }

// IstioClusterName is the decoded form of DIRECTION|PORT|SUBSET|FQDN.
type IstioClusterName struct {
	Direction, Port, Subset, FQDN string
}

// ParseIstioClusterName decodes an Istio-style cluster name such as
// outbound|9080|v1|reviews.default.svc.cluster.local; ok is false for other names.
func ParseIstioClusterName(name string) (IstioClusterName, bool) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return IstioClusterName{}, false
	}
	switch parts[0] {
	case "inbound", "outbound", "inbound-vip", "outbound-vip", "connect_originate":
	default:
		return IstioClusterName{}, false
	}
	return IstioClusterName{Direction: parts[0], Port: parts[1], Subset: parts[2], FQDN: parts[3]}, true
}

// Clusters summarises the dump's clusters, sorted by FQDN, port, subset and direction.
func Clusters(d *configdump.Dump, f Filter) []ClusterRow {
	var rows []ClusterRow
	for _, r := range d.Of(configdump.KindCluster) {
		row := ClusterRow{Name: r.Name, FQDN: r.Name, Port: "-", Subset: "-", Direction: "-", Type: "-", DestinationRule: "-", resource: r}
		if n, ok := ParseIstioClusterName(r.Name); ok {
			row.FQDN, row.Port, row.Subset, row.Direction = orDash(n.FQDN), n.Port, orDash(n.Subset), n.Direction
		}
		if c, ok := r.Message.(*clusterv3.Cluster); ok {
			row.Type = clusterType(c)
			row.DestinationRule = istioConfigRef(istioMetadata(c.GetMetadata(), "config"))
		}
		if !contains(row.FQDN, f.FQDN) || !portIs(row.Port, f.Port) ||
			(f.Direction != "" && row.Direction != f.Direction) || (f.Subset != "" && row.Subset != f.Subset) ||
			!contains(row.Name, f.Name) {
			continue
		}
		rows = append(rows, row)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.FQDN != b.FQDN {
			return a.FQDN < b.FQDN
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if a.Subset != b.Subset {
			return a.Subset < b.Subset
		}
		return a.Direction < b.Direction
	})
	return rows
}

func clusterType(c *clusterv3.Cluster) string {
	if ct := c.GetClusterType(); ct != nil {
		return ct.GetName()
	}
	return c.GetType().String()
}

// istioMetadata reads a string from the "istio" filter metadata.
func istioMetadata(m *corev3.Metadata, key string) string {
	st := m.GetFilterMetadata()["istio"]
	if st == nil {
		return ""
	}
	return st.GetFields()[key].GetStringValue()
}
