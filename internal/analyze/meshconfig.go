package analyze

import (
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshapi "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/pilot/telemetry"
	"mesh.dev/mesh/internal/resource"
)

// Mesh is the mesh-wide configuration analysis runs under: what
// --meshConfigFile and --meshNetworksFile give, with the mesh's defaults
// for what they leave out.
type Mesh struct {
	Config   *meshapi.MeshConfig
	Networks *meshapi.MeshNetworks
	// ConfigFile and NetworksFile name where they were read from, for
	// messages ("" when not given).
	ConfigFile, NetworksFile string
	// networksText and configText are the files as read, for the lines
	// of findings about them.
	networksText, configText []byte
	// FromCluster is the mesh ConfigMap Config was read from when no
	// --meshConfigFile was given (nil otherwise), and ClusterErr why that
	// ConfigMap could not be used (Config then holds the defaults).
	FromCluster *Resource
	ClusterErr  error
}

// MeshConfigMap is the name of the ConfigMap in the mesh's namespace
// whose MeshConfigKey holds the mesh config pilot runs with.
const (
	MeshConfigMap = "mesh"
	MeshConfigKey = "mesh"
)

// DefaultMesh is the configuration when no file is given.
func DefaultMesh() *Mesh { return &Mesh{Config: &meshapi.MeshConfig{RootNamespace: RootNamespace}} }

// Root returns the mesh's root namespace.
func (m *Mesh) Root() string {
	if m == nil || m.Config == nil || m.Config.GetRootNamespace() == "" {
		return RootNamespace
	}
	return m.Config.GetRootNamespace()
}

// ConfigLine is the line the --meshConfigFile's content starts at, where
// the Locator looks for the fields of findings about it.
func (m *Mesh) ConfigLine() int { return resource.FirstContentLine(m.configText) }

// LoadConfig reads a MeshConfig file (YAML or JSON, the fields of
// istio.io/api's mesh.v1alpha1.MeshConfig) into m, keeping its text for
// the lines of findings about it. A field the API does not have is an
// error naming the file, as is a file that is a Kubernetes object (a
// ConfigMap holding the mesh config must be unwrapped: its "mesh" key),
// and so is what mesh-pilot refuses to start with (telemetry.CheckMesh:
// access log formats, extension providers), so a file analyze passes is
// one pilot runs with.
func (m *Mesh) LoadConfig(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	mc, err := parseMeshConfig(path, data)
	if err != nil {
		return err
	}
	m.Config, m.ConfigFile, m.configText = mc, path, data
	return nil
}

func parseMeshConfig(name string, data []byte) (*meshapi.MeshConfig, error) {
	mc := &meshapi.MeshConfig{}
	if err := loadProto(name, data, mc, "MeshConfig"); err != nil {
		return nil, err
	}
	if err := telemetry.CheckMesh(mc); err != nil {
		return nil, &resource.ParseError{File: name, Err: fmt.Errorf("%w (mesh-pilot does not start with this mesh config)", err)}
	}
	if mc.RootNamespace == "" {
		mc.RootNamespace = RootNamespace
	}
	return mc, nil
}

// withClusterConfig is m (nil: the defaults) under the mesh config of the
// mesh ConfigMap among the analysed objects (the live cluster's, or one
// in the files, which are applied over it), as istioctl analyze reads its
// control plane's: a --meshConfigFile wins over it, and a ConfigMap pilot
// could not use leaves the defaults and ClusterErr for the MeshConfig
// analyzer to report.
func (m *Mesh) withClusterConfig(s *Snapshot) *Mesh {
	if m != nil && m.ConfigFile != "" {
		return m
	}
	var cm *corev1.ConfigMap
	var from *Resource
	for _, r := range s.ByKind("ConfigMap") {
		if c, ok := r.Object.(*corev1.ConfigMap); ok && r.Name == MeshConfigMap && r.Namespace == RootNamespace {
			cm, from = c, r
		}
	}
	if cm == nil {
		return m
	}
	out := DefaultMesh()
	if m != nil {
		*out = *m
	}
	out.FromCluster = from
	text, ok := cm.Data[MeshConfigKey]
	if !ok {
		// pilot will not start on such a ConfigMap, and a running one
		// refuses it as a change.
		out.ClusterErr = fmt.Errorf("ConfigMap %s/%s has no key %q, which pilot requires", cm.Namespace, cm.Name, MeshConfigKey)
		return out
	}
	mc, err := parseMeshConfig(fmt.Sprintf("ConfigMap %s/%s key %q", cm.Namespace, cm.Name, MeshConfigKey), []byte(text))
	if err != nil {
		out.ClusterErr = err
		return out
	}
	out.Config = mc
	return out
}

// LoadNetworks reads a MeshNetworks file (the "networks:" map of
// mesh.v1alpha1.MeshNetworks) into m.
func (m *Mesh) LoadNetworks(path string) error {
	mn := &meshapi.MeshNetworks{}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := loadProto(path, data, mn, "MeshNetworks"); err != nil {
		return err
	}
	m.Networks, m.NetworksFile, m.networksText = mn, path, data
	return nil
}

func loadProto(path string, data []byte, m proto.Message, what string) error {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return &resource.ParseError{File: path, Err: fmt.Errorf("invalid YAML: %v", err)}
	}
	if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
		return nil // an empty file: the defaults
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		return &resource.ParseError{File: path, Err: fmt.Errorf("not a %s: %v", what, err)}
	}
	return nil
}
