package agent

import (
	"mesh.dev/mesh/internal/proxy/fault"
	"mesh.dev/mesh/internal/proxy/httpfilter"
	"mesh.dev/mesh/internal/proxy/jwtauthn"
	"mesh.dev/mesh/internal/proxy/localratelimit"
	"mesh.dev/mesh/internal/proxy/rbac"
)

// httpFilters lists the HTTP filters mesh-proxy ships; a new filter is one package and one line here.
func httpFilters() *httpfilter.Registry {
	r := httpfilter.NewRegistry(
		jwtauthn.Factory(),
		rbac.Factory(),
		fault.Factory(),
		localratelimit.Factory(),
	)
	r.Log = configLog
	return r
}
