// Package hostmatch is the one definition of how Istio config names hosts
// and who may see it: short names, wildcards, exportTo and Sidecar egress
// entries. mesh-pilot generates proxy config with it and analyze reports
// with it, so a finding describes what pilot does.
package hostmatch

import "strings"

// DomainSuffix is the cluster DNS suffix services are named under.
const DomainSuffix = "cluster.local"

// KubeHostname is the DNS name of Service name in namespace ns.
func KubeHostname(name, ns string) string {
	return name + "." + ns + ".svc." + DomainSuffix
}

// Resolve expands a host written in a resource of namespace ns: a short
// name ("reviews") is the Service of that name in ns, as Istio resolves
// hosts of VirtualServices, DestinationRules and ServiceEntries; anything
// with a dot, and wildcards, stay as written.
func Resolve(host, ns string) string {
	if host == "*" || strings.HasPrefix(host, "*.") || strings.Contains(host, ".") {
		return host
	}
	return KubeHostname(host, ns)
}

// Matches reports whether pattern ("*", "*.example.com" or a plain host)
// covers host.
func Matches(pattern, host string) bool {
	if pattern == "*" || pattern == host {
		return true
	}
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix)
	}
	return false
}

// Overlap reports whether two host patterns can match a common host.
func Overlap(a, b string) bool { return Matches(a, b) || Matches(b, a) }

// Exported reports whether a resource of namespace own with the given
// exportTo is visible from namespace ns: no entries or "*" mean every
// namespace, "." the resource's own, "~" none, anything else names one.
func Exported(exportTo []string, own, ns string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == "*" || e == ns || (e == "." && own == ns) {
			return true
		}
	}
	return false
}

// ExportToOr is a resource's exportTo, or def when it has none: a
// resource without exportTo takes the mesh config's default for its kind
// (defaultVirtualServiceExportTo and the like), where one is set.
func ExportToOr(exportTo, def []string) []string {
	if len(exportTo) == 0 {
		return def
	}
	return exportTo
}

// EgressAdmits reports whether one Sidecar egress host entry
// ("namespace/host") written in a Sidecar of namespace sidecarNS admits a
// service named host in namespace svcNS. The namespace part is "*" (any),
// "." (the Sidecar's own), "~" (none) or a namespace name; an entry without
// "/" admits nothing (validation rejects it).
func EgressAdmits(entry, sidecarNS, svcNS, host string) bool {
	nsPart, hostPart, ok := strings.Cut(entry, "/")
	if !ok {
		return false
	}
	switch nsPart {
	case "*":
	case ".":
		if svcNS != sidecarNS {
			return false
		}
	case "~":
		return false
	default:
		if svcNS != nsPart {
			return false
		}
	}
	return Matches(hostPart, host)
}

// IsWildcard reports whether host is a pattern ("*" or "*.suffix").
func IsWildcard(host string) bool { return strings.Contains(host, "*") }

// Rule is what choosing a DestinationRule reads of one: its namespace, its
// host (resolved with Resolve) and its exportTo.
type Rule struct {
	Namespace string
	Host      string
	ExportTo  []string
}

// PickRule returns the index in rules (oldest first) of the
// DestinationRule that applies to traffic from a proxy in proxyNS to host,
// a service of namespace svcNS, or -1 when none does. As Istio looks them
// up: first the rules of the proxy's own namespace (for a proxy in the root
// namespace, only root rules kept to it), then the rules of the service's
// namespace exported to the proxy's, then the root namespace's exported
// to it. Within one namespace an exact host beats a wildcard and a longer
// wildcard a shorter one; among equals the oldest wins (Istio merges such
// rules instead; see docs/pilot.md).
func PickRule(rules []Rule, proxyNS, svcNS, rootNS, host string) int {
	local := func(r Rule) bool {
		if r.Namespace != proxyNS {
			return false
		}
		if proxyNS != rootNS {
			return Exported(r.ExportTo, r.Namespace, proxyNS)
		}
		// A root rule exported anywhere is the mesh-wide default, looked
		// at last; only one kept to the root namespace is its own.
		if len(r.ExportTo) == 0 {
			return false
		}
		for _, e := range r.ExportTo {
			if e != "." && e != rootNS {
				return false
			}
		}
		return true
	}
	tiers := []func(Rule) bool{
		local,
		func(r Rule) bool { return r.Namespace == svcNS && Exported(r.ExportTo, r.Namespace, proxyNS) },
		func(r Rule) bool { return r.Namespace == rootNS && Exported(r.ExportTo, r.Namespace, proxyNS) },
	}
	for _, in := range tiers {
		best, bestRank := -1, 0
		for i, r := range rules {
			if !in(r) || !Matches(r.Host, host) {
				continue
			}
			// Rank by specificity: exact first, then by the length of
			// the wildcard's suffix.
			rank := len(r.Host)
			if !IsWildcard(r.Host) {
				rank = len(host) + 1
			}
			if best < 0 || rank > bestRank {
				best, bestRank = i, rank
			}
		}
		if best >= 0 {
			return best
		}
	}
	return -1
}
