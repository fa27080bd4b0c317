// Package bootstrap loads an Envoy v3 bootstrap file (YAML or JSON) into its typed form.
package bootstrap

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
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
	b, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("invalid: %w", err)
	}
	return b, nil
}

func decode(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("not YAML or JSON: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("not an envoy.config.bootstrap.v3.Bootstrap: %s", tidy(err))
	}
	return b, nil
}

// LoadWith is Envoy's -c FILE with --config-yaml TEXT: the YAML is merged
// over the file's bootstrap as protobuf merges messages (scalars replace,
// repeated fields append), and the result is validated. Either may be empty.
func LoadWith(path, overlay string) (*bootstrapv3.Bootstrap, error) {
	b := &bootstrapv3.Bootstrap{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read bootstrap: %w", err)
		}
		if b, err = decode(data); err != nil {
			return nil, fmt.Errorf("bootstrap %s: %w", path, err)
		}
	}
	if overlay != "" {
		o, err := decode([]byte(overlay))
		if err != nil {
			return nil, fmt.Errorf("--config-yaml: %w", err)
		}
		proto.Merge(b, o)
	}
	if err := b.ValidateAll(); err != nil {
		where := "--config-yaml"
		if path != "" {
			where = "bootstrap " + path
			if overlay != "" {
				where += " with --config-yaml"
			}
		}
		return nil, fmt.Errorf("%s: invalid: %w", where, err)
	}
	return b, nil
}

// AdminAddress is the admin listener's address the bootstrap asks for ("" when it sets none).
// Admin settings the proxy cannot carry out are refused by name: an admin
// access log to anything but /dev/null, and socket options. profile_path is
// where the admin API's /cpuprofiler writes.
func AdminAddress(b *bootstrapv3.Bootstrap) (string, error) {
	a := b.GetAdmin()
	if a == nil {
		return "", nil
	}
	if p := a.GetAccessLogPath(); p != "" && p != "/dev/null" { //nolint:staticcheck // Istio still sends it
		return "", fmt.Errorf("admin.access_log_path %q: admin access logs are not written; use /dev/null or leave it out", p)
	}
	if len(a.GetAccessLog()) > 0 {
		return "", fmt.Errorf("admin.access_log: admin access logs are not written; leave it out")
	}
	if len(a.GetSocketOptions()) > 0 {
		return "", fmt.Errorf("admin.socket_options: not supported")
	}
	if a.GetAddress() == nil {
		return "", nil
	}
	sa := a.GetAddress().GetSocketAddress()
	if sa == nil {
		return "", fmt.Errorf("admin.address: only socket_address is supported")
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return "", fmt.Errorf("admin.address.socket_address.protocol: only TCP is supported")
	}
	if sa.GetNamedPort() != "" {
		return "", fmt.Errorf("admin.address.socket_address.named_port: give port_value")
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), nil
}

// tidy drops protojson's "proto:" prefix and its deliberately unstable non-breaking spaces.
func tidy(err error) string {
	s := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	return strings.TrimPrefix(s, "proto: ")
}
