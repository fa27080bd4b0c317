// Package appprobe is the agent's half of Istio's probe rewrite. Under STRICT
// mTLS a kubelet's plaintext probe to an app port is refused by the sidecar,
// so the injector moves each HTTP, TCP and gRPC probe of an app container to
// the agent's status port (/app-health/<container>/livez|readyz|startupz on
// 15020, which is not captured) and hands the original probes to the proxy in
// ISTIO_KUBE_APP_PROBERS. The agent answers each path by probing the app from
// inside the pod, where its own traffic is not captured.
//
// The wire format is Istio's (a JSON object from path to prober), so a pod
// injected by Istio's injector, or by ours, is probed the same way. The types
// are this package's own so that mesh-proxy does not link the Kubernetes API.
package appprobe

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Names Istio uses, kept so its pods and docs carry over.
const (
	EnvVar     = "ISTIO_KUBE_APP_PROBERS"
	PathPrefix = "/app-health/"
	// StatusPort is the agent's status port that rewritten probes target.
	StatusPort = 15020
	// LegacyLocalhostEnv set to "true" probes the app on localhost instead of
	// the pod IP (Istio's REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION).
	LegacyLocalhostEnv = "REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION"
)

// Kinds maps a probe kind to the last element of its path.
var Kinds = map[string]string{"liveness": "livez", "readiness": "readyz", "startup": "startupz"}

// Path is the status-port path that stands for a container's probe of kind
// (liveness, readiness or startup).
func Path(container, kind string) string { return PathPrefix + container + "/" + Kinds[kind] }

// Probers maps a rewritten probe's path to the probe it replaced.
type Probers map[string]Prober

// Prober is one original probe, exactly one handler set.
type Prober struct {
	HTTPGet        *HTTPGet   `json:"httpGet,omitempty"`
	TCPSocket      *TCPSocket `json:"tcpSocket,omitempty"`
	GRPC           *GRPC      `json:"grpc,omitempty"`
	TimeoutSeconds int32      `json:"timeoutSeconds,omitempty"`
}

// HTTPGet is Kubernetes' HTTPGetAction with its port resolved to a number.
type HTTPGet struct {
	Path        string   `json:"path,omitempty"`
	Port        Port     `json:"port"`
	Host        string   `json:"host,omitempty"`
	Scheme      string   `json:"scheme,omitempty"` // HTTP (default) or HTTPS
	HTTPHeaders []Header `json:"httpHeaders,omitempty"`
}

// Header is one header the probe sends.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocket is Kubernetes' TCPSocketAction with its port resolved.
type TCPSocket struct {
	Port Port   `json:"port"`
	Host string `json:"host,omitempty"`
}

// GRPC is Kubernetes' GRPCAction: a grpc.health.v1 Check of Service.
type GRPC struct {
	Port    Port    `json:"port"`
	Service *string `json:"service,omitempty"`
}

// Port is a port number; in JSON a number or a string of digits (Kubernetes'
// IntOrString, resolved by the injector: a port name cannot be resolved here).
type Port int32

// UnmarshalJSON accepts 8080 and "8080".
func (p *Port) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("port %s: want a port number (a named port must be resolved to its number)", b)
	}
	*p = Port(n)
	return nil
}

// Parse reads ISTIO_KUBE_APP_PROBERS, naming the path and field of a mistake.
// An empty value means no probes.
func Parse(s string) (Probers, error) {
	if strings.TrimSpace(s) == "" {
		return Probers{}, nil
	}
	var ps Probers
	if err := json.Unmarshal([]byte(s), &ps); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvVar, err)
	}
	paths := make([]string, 0, len(ps))
	for p := range ps {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, path := range paths {
		if err := check(path, ps[path]); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", EnvVar, path, err)
		}
	}
	return ps, nil
}

func check(path string, p Prober) error {
	rest, ok := strings.CutPrefix(path, PathPrefix)
	container, kind, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || container == "" || (kind != "livez" && kind != "readyz" && kind != "startupz") {
		return fmt.Errorf("want %s<container>/livez, readyz or startupz", PathPrefix)
	}
	n := 0
	var port Port
	if h := p.HTTPGet; h != nil {
		n++
		port = h.Port
		if h.Scheme != "" && !strings.EqualFold(h.Scheme, "HTTP") && !strings.EqualFold(h.Scheme, "HTTPS") {
			return fmt.Errorf("httpGet.scheme %q: want HTTP or HTTPS", h.Scheme)
		}
	}
	if p.TCPSocket != nil {
		n++
		port = p.TCPSocket.Port
	}
	if p.GRPC != nil {
		n++
		port = p.GRPC.Port
	}
	if n != 1 {
		return fmt.Errorf("want exactly one of httpGet, tcpSocket and grpc, got %d", n)
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d: want 1-65535", port)
	}
	if p.TimeoutSeconds < 0 {
		return fmt.Errorf("timeoutSeconds %d: want 0 or more", p.TimeoutSeconds)
	}
	return nil
}

// Encode renders probers as the environment variable's value.
func (ps Probers) Encode() (string, error) {
	b, err := json.Marshal(ps) // map keys are sorted: the same pod gives the same value
	return string(b), err
}
