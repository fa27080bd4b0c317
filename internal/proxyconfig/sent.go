package proxyconfig

import "mesh.dev/mesh/internal/configdump"

// SentKinds are the kinds a control plane sends over xDS that both sides of
// a proxy-status comparison hold; bootstrap is the proxy's own, and secrets
// are redacted differently by each side.
var SentKinds = []configdump.Kind{configdump.KindCluster, configdump.KindListener, configdump.KindRoute, configdump.KindEndpoint}

// Sent returns a dump holding only the dynamic resources of SentKinds: what
// came over xDS, without what the proxy's bootstrap configured statically.
func Sent(d *configdump.Dump) *configdump.Dump {
	out := &configdump.Dump{}
	for _, r := range d.Resources {
		if r.State == configdump.StateStatic {
			continue
		}
		for _, k := range SentKinds {
			if r.Kind == k {
				out.Resources = append(out.Resources, r)
				break
			}
		}
	}
	return out
}
