// Package bootstrap loads an Envoy v3 bootstrap file (YAML or JSON) into its typed form.
package bootstrap

import (
	"fmt"
	"os"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	// The typed_config payloads a bootstrap may carry must be resolvable by protojson.
	_ "mesh.dev/mesh/internal/proxy/config/types"
)

// Load reads and parses a bootstrap file; the error names the file.
func Load(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bootstrap: %w", err)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("bootstrap %s: %w", path, err)
	}
	return b, nil
}

// Parse decodes YAML or JSON bootstrap bytes and checks them against Envoy's validation rules.
func Parse(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("not YAML or JSON: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("not an envoy.config.bootstrap.v3.Bootstrap: %s", tidy(err))
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("invalid: %w", err)
	}
	return b, nil
}

// tidy drops protojson's "proto:" prefix and its deliberately unstable non-breaking spaces.
func tidy(err error) string {
	s := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	return strings.TrimPrefix(s, "proto: ")
}
