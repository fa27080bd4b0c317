package authz

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	meshapi "istio.io/api/mesh/v1alpha1"
	securityapi "istio.io/api/security/v1beta1"

	"mesh.dev/mesh/internal/enforced"
)

// ResolveProvider finds the one ext_authz provider the CUSTOM policies name
// and the hostname of its service.
func ResolveProvider(mesh *meshapi.MeshConfig, names []string, serviceKnown func(ns, host string) bool) (*meshapi.MeshConfig_ExtensionProvider, string, error) {
	distinct := map[string]bool{}
	for _, n := range names {
		distinct[n] = true
	}
	if len(distinct) > 1 {
		all := make([]string, 0, len(distinct))
		for n := range distinct {
			all = append(all, strconv.Quote(n))
		}
		sort.Strings(all)
		return nil, "", fmt.Errorf("CUSTOM policies on one workload name several providers (%s); only one is supported, as in Istio: every request to the workload is denied", strings.Join(all, ", "))
	}
	var name string
	for n := range distinct {
		name = n
	}
	if name == "" {
		return nil, "", fmt.Errorf("a CUSTOM policy needs provider.name: every request to the workload is denied")
	}
	var p *meshapi.MeshConfig_ExtensionProvider
	for _, ep := range mesh.GetExtensionProviders() {
		if ep.GetName() == name {
			p = ep
			break
		}
	}
	var service string
	switch {
	case p == nil:
		return nil, "", fmt.Errorf("provider %q is not in meshConfig.extensionProviders: every request to the workload is denied", name)
	case p.GetEnvoyExtAuthzHttp() != nil:
		service = p.GetEnvoyExtAuthzHttp().GetService()
	case p.GetEnvoyExtAuthzGrpc() != nil:
		service = p.GetEnvoyExtAuthzGrpc().GetService()
	default:
		return nil, "", fmt.Errorf("provider %q is not an envoyExtAuthzHttp or envoyExtAuthzGrpc provider: every request to the workload is denied", name)
	}
	ns, host, ok := strings.Cut(service, "/")
	if !ok {
		ns, host = "", service
	}
	if serviceKnown != nil && !serviceKnown(ns, host) {
		return nil, "", fmt.Errorf("provider %q: service %q is not a known Service or ServiceEntry host: every request to the workload is denied", name, service)
	}
	return p, host, nil
}

// ProviderFinding says why a CUSTOM policy's provider cannot be used under
// the mesh config, or which of the provider's set fields pilot does not
// carry out (nil when neither, or the policy is not CUSTOM), for analyze
// and pilot's status; serviceKnown may be nil (not checked).
func ProviderFinding(ap *securityapi.AuthorizationPolicy, mesh *meshapi.MeshConfig, serviceKnown func(ns, host string) bool) *enforced.Finding {
	if ap.GetAction() != securityapi.AuthorizationPolicy_CUSTOM {
		return nil
	}
	p, _, err := ResolveProvider(mesh, []string{ap.GetProvider().GetName()}, serviceKnown)
	if err != nil {
		return &enforced.Finding{Path: "spec.provider.name", Note: err.Error()}
	}
	var msg proto.Message = p.GetEnvoyExtAuthzGrpc()
	kind := "envoyExtAuthzGrpc"
	if h := p.GetEnvoyExtAuthzHttp(); h != nil {
		msg, kind = h, "envoyExtAuthzHttp"
	}
	var notes []string
	// The provider's fields are classified in the mesh config's field
	// table, as meshConfig.extensionProviders.<kind>.<field>.
	for _, f := range enforced.Fields(enforced.MeshConfigKind, "meshConfig.extensionProviders."+kind, kind, msg.ProtoReflect()) {
		notes = append(notes, f.String())
	}
	if len(notes) == 0 {
		return nil
	}
	sort.Strings(notes)
	return &enforced.Finding{Path: "spec.provider.name", Note: fmt.Sprintf("provider %q in meshConfig.extensionProviders sets %s", p.GetName(), strings.Join(notes, "; "))}
}
