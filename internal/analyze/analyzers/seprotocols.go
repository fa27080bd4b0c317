package analyzers

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/client-go/pkg/apis/networking/v1"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/hostmatch"
)

// ServiceEntryProtocols reports ServiceEntries that give one host and port
// different protocols where a namespace sees both (IST0177): a proxy has
// one listener protocol per host and port, so one entry's traffic is
// handled as the other's protocol.
type ServiceEntryProtocols struct{}

// Metadata describes the analyzer.
func (*ServiceEntryProtocols) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "serviceentry.ConflictingProtocol", Description: "Checks ServiceEntries visible together agree on the protocol of each host and port",
		Codes: []*analyze.MessageType{analyze.ConflictingServiceEntryProtocol}}
}

type seHostPort struct {
	host string
	port uint32
}

type seClaim struct {
	r        *analyze.Resource
	se       *networking.ServiceEntry
	exportTo []string // with the mesh config's default
	protocol string
	port     int // index in spec.ports
}

// Analyze runs the checks.
func (*ServiceEntryProtocols) Analyze(ctx *analyze.Context) {
	claims := map[seHostPort][]seClaim{}
	var order []seHostPort
	for _, r := range ctx.ByKind("ServiceEntry") {
		se, ok := r.Object.(*networking.ServiceEntry)
		if !ok {
			continue
		}
		for _, h := range se.Spec.Hosts {
			host := analyze.ResolveSEHost(h, r.Namespace)
			for i, p := range se.Spec.Ports {
				k := seHostPort{host, p.Number}
				if claims[k] == nil {
					order = append(order, k)
				}
				claims[k] = append(claims[k], seClaim{r: r, se: se, exportTo: ctx.ServiceEntryExportTo(se), protocol: protocolOf(p), port: i})
			}
		}
	}
	reported := map[*analyze.Resource]bool{}
	for _, k := range order {
		cs := claims[k]
		if len(cs) < 2 {
			continue
		}
		// The entries conflict where some namespace sees two of them with
		// different protocols; a pair exported to disjoint namespaces
		// never meets in one proxy.
		var conflicting []seClaim
		for i := range cs {
			for j := range cs {
				if i != j && cs[i].protocol != cs[j].protocol && visibleTogether(cs[i], cs[j]) {
					conflicting = append(conflicting, cs[i])
					break
				}
			}
		}
		if len(conflicting) == 0 {
			continue
		}
		names, protos := make([]string, 0, len(conflicting)), map[string]bool{}
		for _, c := range conflicting {
			names = append(names, c.r.Namespace+"/"+c.r.Name)
			protos[c.protocol] = true
		}
		sort.Strings(names)
		plist := make([]string, 0, len(protos))
		for p := range protos {
			plist = append(plist, p)
		}
		sort.Strings(plist)
		for _, c := range conflicting {
			if reported[c.r] {
				continue // one message per entry, at its first conflict
			}
			reported[c.r] = true
			ctx.Report(analyze.ConflictingServiceEntryProtocol, c.r, fmt.Sprintf("spec.ports[%d].protocol", c.port),
				"Multiple ServiceEntries (%s) define the same host %q and port %d with conflicting protocols (%s).",
				strings.Join(names, ", "), k.host, k.port, strings.Join(plist, ", "))
		}
	}
}

// protocolOf is the port's protocol as the proxy would use it; unset is
// TCP, and names are compared without case as pilot does.
func protocolOf(p interface{ GetProtocol() string }) string {
	if p.GetProtocol() == "" {
		return "TCP"
	}
	return strings.ToUpper(p.GetProtocol())
}

// visibleTogether reports whether some namespace sees both entries: one
// of their own namespaces, a namespace either exports to by name, or any
// other namespace when both are exported mesh-wide.
func visibleTogether(a, b seClaim) bool {
	candidates := []string{a.r.Namespace, b.r.Namespace, otherNamespace}
	candidates = append(candidates, a.exportTo...)
	candidates = append(candidates, b.exportTo...)
	for _, ns := range candidates {
		if ns == "." || ns == "~" || ns == "*" {
			continue // exportTo keywords, not namespaces
		}
		if hostmatch.Exported(a.exportTo, a.r.Namespace, ns) && hostmatch.Exported(b.exportTo, b.r.Namespace, ns) {
			return true
		}
	}
	return false
}

// otherNamespace stands for a namespace no exportTo names: only entries
// exported to every namespace are visible there.
const otherNamespace = "\x00other"
