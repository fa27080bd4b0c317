// Package telemetry resolves what mesh config and the Telemetry API say
// about a proxy's access logs, traces and metrics, in Istio's order
// (workload over namespace over root namespace, then mesh defaults), into
// the Envoy config pilot writes on HCMs and TCP proxies.
package telemetry

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"
)

// ParseMesh reads mesh config YAML (the `mesh` key of the mesh ConfigMap)
// as Istio's MeshConfig. An unknown field or a bad value is an error that
// names it; the access log format and providers are checked as well, so a
// mistake stops pilot with a message instead of every proxy refusing its
// listeners later.
func ParseMesh(data []byte, file string) (*meshconfig.MeshConfig, error) {
	mc := &meshconfig.MeshConfig{}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	if s := strings.TrimSpace(string(js)); s == "" || s == "null" {
		return mc, nil
	}
	if err := protojson.Unmarshal(js, mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: %v (fields are Istio's MeshConfig, https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/)", file, err)
	}
	if err := CheckMesh(mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", file, err)
	}
	return mc, nil
}

// CheckMesh validates the observability part of a mesh config.
func CheckMesh(mc *meshconfig.MeshConfig) error {
	if mc.GetAccessLogFile() != "" {
		if _, err := meshAccessLog(mc); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i, p := range mc.GetExtensionProviders() {
		f := fmt.Sprintf("extensionProviders[%d]", i)
		if p.GetName() == "" {
			return fmt.Errorf("%s.name: a provider needs a name", f)
		}
		if seen[p.GetName()] {
			return fmt.Errorf("%s.name: provider %q is defined twice", f, p.GetName())
		}
		seen[p.GetName()] = true
		if fl := p.GetEnvoyFileAccessLog(); fl != nil {
			if _, err := fileProviderLog(fl, f+".envoyFileAccessLog"); err != nil {
				return err
			}
		}
		if ot := p.GetOpentelemetry(); ot != nil && (ot.GetService() == "" || ot.GetPort() == 0) {
			return fmt.Errorf("%s.opentelemetry: service and port are required", f)
		}
		if z := p.GetZipkin(); z != nil && (z.GetService() == "" || z.GetPort() == 0) {
			return fmt.Errorf("%s.zipkin: service and port are required", f)
		}
	}
	return nil
}

// provider returns the extension provider called name; "envoy" is Istio's
// built-in file logger to /dev/stdout unless the mesh config redefines it.
func provider(mc *meshconfig.MeshConfig, name string) *meshconfig.MeshConfig_ExtensionProvider {
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == name {
			return p
		}
	}
	if name == "envoy" {
		return &meshconfig.MeshConfig_ExtensionProvider{Name: "envoy", Provider: &meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLog{
			EnvoyFileAccessLog: &meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider{Path: "/dev/stdout"},
		}}
	}
	return nil
}
