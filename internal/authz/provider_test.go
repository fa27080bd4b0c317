package authz

import (
	"strings"
	"testing"

	meshapi "istio.io/api/mesh/v1alpha1"
	securityapi "istio.io/api/security/v1beta1"
)

func TestProviderFinding(t *testing.T) {
	mesh := &meshapi.MeshConfig{ExtensionProviders: []*meshapi.MeshConfig_ExtensionProvider{
		{Name: "opa", Provider: &meshapi.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{Service: "opa.authz.svc.cluster.local", Port: 9191}}},
		{Name: "zipkin", Provider: &meshapi.MeshConfig_ExtensionProvider_Zipkin{Zipkin: &meshapi.MeshConfig_ExtensionProvider_ZipkinTracingProvider{Service: "zipkin", Port: 9411}}},
	}}
	custom := func(name string) *securityapi.AuthorizationPolicy {
		return &securityapi.AuthorizationPolicy{Action: securityapi.AuthorizationPolicy_CUSTOM, ActionDetail: &securityapi.AuthorizationPolicy_Provider{Provider: &securityapi.AuthorizationPolicy_ExtensionProvider{Name: name}}}
	}
	known := func(ns, host string) bool { return host == "opa.authz.svc.cluster.local" }
	for name, want := range map[string]string{
		"opa":    "",
		"zipkin": "not an envoyExtAuthzHttp or envoyExtAuthzGrpc provider",
		"nope":   `provider "nope" is not in meshConfig.extensionProviders`,
		"":       "needs provider.name",
	} {
		f := ProviderFinding(custom(name), mesh, known)
		switch {
		case want == "" && f != nil:
			t.Errorf("%q: %v; want none", name, f)
		case want != "" && (f == nil || !strings.Contains(f.Note, want) || !strings.Contains(f.Note, "every request to the workload is denied")):
			t.Errorf("%q: %v; want a note containing %q", name, f, want)
		}
	}
	if f := ProviderFinding(custom("opa"), mesh, func(string, string) bool { return false }); f == nil || !strings.Contains(f.Note, "not a known Service") {
		t.Errorf("unknown service: %v", f)
	}
	if _, _, err := ResolveProvider(mesh, []string{"opa", "other"}, nil); err == nil || !strings.Contains(err.Error(), "several providers") {
		t.Errorf("two providers: %v", err)
	}
	if f := ProviderFinding(&securityapi.AuthorizationPolicy{}, mesh, nil); f != nil {
		t.Errorf("ALLOW policy: %v", f)
	}
}

// A provider field pilot does not carry out is reported on every CUSTOM
// policy that uses the provider, naming the field; the policy is still
// checked (the field changes no decision).
func TestProviderFieldNotCarriedOut(t *testing.T) {
	custom := &securityapi.AuthorizationPolicy{Action: securityapi.AuthorizationPolicy_CUSTOM, ActionDetail: &securityapi.AuthorizationPolicy_Provider{Provider: &securityapi.AuthorizationPolicy_ExtensionProvider{Name: "opa"}}}
	for _, p := range []*meshapi.MeshConfig_ExtensionProvider{
		{Name: "opa", Provider: &meshapi.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc{EnvoyExtAuthzGrpc: &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{Service: "opa.authz.svc.cluster.local", Port: 9191, ClearRouteCache: true}}},
		{Name: "opa", Provider: &meshapi.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp{EnvoyExtAuthzHttp: &meshapi.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationHttpProvider{Service: "opa.authz.svc.cluster.local", Port: 8181, ClearRouteCache: true, FailOpen: true}}},
	} {
		mesh := &meshapi.MeshConfig{ExtensionProviders: []*meshapi.MeshConfig_ExtensionProvider{p}}
		f := ProviderFinding(custom, mesh, nil)
		if f == nil || f.Path != "spec.provider.name" || !strings.Contains(f.Note, ".clearRouteCache: routes are not recomputed") || strings.Contains(f.Note, "failOpen") {
			t.Errorf("%v: %v; want clearRouteCache reported, nothing else", p, f)
		}
		if _, _, err := ResolveProvider(mesh, []string{"opa"}, nil); err != nil {
			t.Errorf("%v: %v; want the provider used", p, err)
		}
	}
}
