package agent

import (
	"mesh.dev/mesh/internal/proxy/extauthz"
	"mesh.dev/mesh/internal/proxy/fault"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/istiostats"
	"mesh.dev/mesh/internal/proxy/jwtauthn"
	"mesh.dev/mesh/internal/proxy/localratelimit"
	"mesh.dev/mesh/internal/proxy/peermeta"
	"mesh.dev/mesh/internal/proxy/rbac"
)

// httpFilters lists the HTTP filters mesh-proxy ships, then an embedder's extra ones; a new filter is one package and one line here.
func httpFilters(stats *istiostats.Recorder, extra ...httpfilter.Factory) *httpfilter.Registry {
	r := httpfilter.NewRegistry(append([]httpfilter.Factory{
		peermeta.Factory(stats.Self),
		jwtauthn.Factory(),
		rbac.Factory(),
		extauthz.Factory(),
		fault.Factory(),
		localratelimit.Factory(),
		istiostats.Factory(stats),
	}, extra...)...)
	r.Log = configLog
	return r
}
