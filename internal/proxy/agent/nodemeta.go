package agent

import (
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	"mesh.dev/mesh/internal/proxy/peermeta"
	"mesh.dev/mesh/internal/version"
)

// The environment prefixes Istio's agent turns into xDS node metadata:
// ISTIO_META_<KEY> is the string KEY, ISTIO_METAJSON_<KEY> the JSON value KEY.
const (
	envMeta     = "ISTIO_META_"
	envMetaJSON = "ISTIO_METAJSON_"
)

// NodeMetadataFromEnv reads the node metadata the environment gives (environ
// as os.Environ returns it), naming the variable whose JSON is malformed.
func NodeMetadataFromEnv(environ []string) (map[string]*structpb.Value, error) {
	out := map[string]*structpb.Value{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, envMetaJSON) && len(k) > len(envMetaJSON):
			var x any
			if err := json.Unmarshal([]byte(v), &x); err != nil {
				return nil, fmt.Errorf("environment %s: want a JSON value: %w", k, err)
			}
			pv, err := structpb.NewValue(x)
			if err != nil {
				return nil, fmt.Errorf("environment %s: %w", k, err)
			}
			out[strings.TrimPrefix(k, envMetaJSON)] = pv
		case strings.HasPrefix(k, envMeta) && len(k) > len(envMeta):
			out[strings.TrimPrefix(k, envMeta)] = structpb.NewStringValue(v)
		}
	}
	return out, nil
}

// xdsNodeMetadata is the metadata of the node mesh-proxy sends pilot: the
// bootstrap's, then the environment's keys it does not have, then
// ISTIO_VERSION (this build's version, which `mesh proxy-status` shows) and
// CLUSTER_ID (the workload's cluster) unless already said.
func xdsNodeMetadata(boot *structpb.Struct, env map[string]*structpb.Value, self *peermeta.Node) *structpb.Struct {
	out := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for k, v := range boot.GetFields() {
		out.Fields[k] = v
	}
	for k, v := range env {
		if _, ok := out.Fields[k]; !ok {
			out.Fields[k] = v
		}
	}
	if _, ok := out.Fields["ISTIO_VERSION"]; !ok {
		out.Fields["ISTIO_VERSION"] = structpb.NewStringValue(version.Version)
	}
	if _, ok := out.Fields["CLUSTER_ID"]; !ok && self.ClusterID != "" {
		out.Fields["CLUSTER_ID"] = structpb.NewStringValue(self.ClusterID)
	}
	return out
}
