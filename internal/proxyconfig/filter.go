// Package proxyconfig turns a parsed Envoy config dump into the summaries
// `mesh proxy-config` prints (one row per resource) and compares two dumps.
package proxyconfig

import (
	"strconv"
	"strings"

	"mesh.dev/mesh/internal/configdump"
)

// Filter narrows the rows of a summary; zero fields match everything.
type Filter struct {
	FQDN      string // clusters: substring of the service FQDN
	Port      int    // clusters, listeners, endpoints: exact port
	Direction string // clusters: inbound, outbound, ...
	Subset    string // clusters: exact subset
	Name      string // listeners, routes, secrets: substring of the resource name
	Address   string // listeners, endpoints: substring of the address
	Cluster   string // endpoints: substring of the cluster name
	Status    string // endpoints: health status, case-insensitive
}

func contains(have, want string) bool { return want == "" || strings.Contains(have, want) }

func portIs(have string, want int) bool { return want == 0 || have == strconv.Itoa(want) }

// Resources returns the distinct resources behind rows, in row order; -o json|yaml prints these.
func Resources[R interface{ Source() *configdump.Resource }](rows []R) []*configdump.Resource {
	seen := map[*configdump.Resource]bool{}
	var out []*configdump.Resource
	for _, r := range rows {
		res := r.Source()
		if res != nil && !seen[res] {
			seen[res] = true
			out = append(out, res)
		}
	}
	return out
}

// istioConfigRef turns the istio filter metadata's "config" path
// (/apis/networking.istio.io/v1alpha3/namespaces/NS/destination-rule/NAME)
// into NAME.NS, or "-" when there is none.
func istioConfigRef(path string) string {
	if path == "" {
		return "-"
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := 0; i+3 < len(parts); i++ {
		if parts[i] == "namespaces" {
			return parts[i+3] + "." + parts[i+1]
		}
	}
	return path
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
