package pilot

import (
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshapi "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"
)

// loadMeshConfig reads the mesh config file (the `mesh` ConfigMap's key:
// istio.io/api's mesh.v1alpha1.MeshConfig in YAML or JSON). A field the API
// does not have, or a value of the wrong type, is an error naming the file
// and the field: pilot does not start on a config it would misread, since
// parts of it (pathNormalization, extensionProviders) decide security.
func loadMeshConfig(path string) (*meshapi.MeshConfig, error) {
	mc := &meshapi.MeshConfig{}
	if path == "" {
		return mc, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mesh config: %w", err)
	}
	return parseMeshConfig(path, data)
}

func parseMeshConfig(path string, data []byte) (*meshapi.MeshConfig, error) {
	mc := &meshapi.MeshConfig{}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("mesh config %s: invalid YAML: %v", path, err)
	}
	if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
		return mc, nil
	}
	if err := protojson.Unmarshal(js, mc); err != nil {
		return nil, fmt.Errorf("mesh config %s: not a mesh.v1alpha1.MeshConfig: %v (fix or remove the field)", path, err)
	}
	return mc, nil
}
