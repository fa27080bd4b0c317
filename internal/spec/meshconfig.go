package spec

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshapi "istio.io/api/mesh/v1alpha1"

	"mesh.dev/mesh/internal/enforced"
	"mesh.dev/mesh/internal/pilot/telemetry"
)

// meshConfigPath checks the part of a --set path below meshConfig against
// Istio's MeshConfig, so a misspelt field is refused where it was typed
// rather than rendered into a ConfigMap pilot will not start on. Map
// values (proxyMetadata's keys) and struct-typed values are not walked.
func meshConfigPath(p Path) error {
	md := (&meshapi.MeshConfig{}).ProtoReflect().Descriptor()
	for i := 1; i < len(p); i++ {
		s := p[i]
		if s.Kind != FieldStep {
			continue // a list element: the same message
		}
		fd := md.Fields().ByJSONName(s.Key)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(s.Key))
		}
		if fd == nil {
			here := Path(p[:i]).String()
			e := &PathError{Path: p.String(), At: here,
				Reason: fmt.Sprintf("%s has no field %q (Istio's MeshConfig; docs/meshconfig.md)", here, s.Key)}
			best, bestD := "", 1<<30
			for j := 0; j < md.Fields().Len(); j++ {
				k := md.Fields().Get(j).JSONName()
				if d := editDistance(strings.ToLower(s.Key), strings.ToLower(k)); d < bestD {
					best, bestD = k, d
				}
			}
			if bestD <= max(2, len(s.Key)/2) {
				e.Suggestion = append(append(Path{}, p[:i]...), Step{Kind: FieldStep, Key: best}).String()
			}
			return e
		}
		switch {
		case fd.IsMap():
			return nil
		case fd.Message() == nil || fd.Message().FullName().Parent() == "google.protobuf":
			return nil
		}
		md = fd.Message()
	}
	return nil
}

// checkMeshConfig reads the merged meshConfig as pilot will (Istio's
// MeshConfig, strictly, and the observability checks pilot makes at
// start), and returns what it sets that the mesh does not carry out.
func checkMeshConfig(m map[string]any) ([]string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	js, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("meshConfig: %v", err)
	}
	mc := &meshapi.MeshConfig{}
	if err := protojson.Unmarshal(js, mc); err != nil {
		return nil, fmt.Errorf("meshConfig: %v (the fields are Istio's MeshConfig; see docs/meshconfig.md)", err)
	}
	if err := telemetry.CheckMesh(mc); err != nil {
		return nil, fmt.Errorf("meshConfig.%v", err)
	}
	var warns []string
	for _, f := range enforced.MeshConfig(mc) {
		warns = append(warns, fmt.Sprintf("%s is not carried out: %s", f.Path, f.Note))
	}
	sort.Strings(warns)
	return warns, nil
}
