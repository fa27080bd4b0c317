package inject

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/proxy/capture"
)

// Istio's traffic annotations: a pod's own capture settings, over the
// injector's values (values.global.proxy.*).
const (
	IncludeInboundPortsAnnotation     = "traffic.sidecar.istio.io/includeInboundPorts"
	ExcludeInboundPortsAnnotation     = "traffic.sidecar.istio.io/excludeInboundPorts"
	IncludeOutboundIPRangesAnnotation = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	ExcludeOutboundIPRangesAnnotation = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	IncludeOutboundPortsAnnotation    = "traffic.sidecar.istio.io/includeOutboundPorts"
	ExcludeOutboundPortsAnnotation    = "traffic.sidecar.istio.io/excludeOutboundPorts"
)

// proxyInboundPorts are never captured inbound: the status, health and
// metrics ports the kubelet and Prometheus reach in plaintext.
const proxyInboundPorts = "15020,15021,15090"

// Capture holds the injector's defaults for the capture annotations, as
// Istio's values.global.proxy holds them. Unset fields take Istio's
// defaults: every inbound port, every outbound range. Unset (nil) and empty
// differ: includeIPRanges "" captures no outbound traffic, as in Istio.
type Capture struct {
	IncludeInboundPorts  *string `json:"includeInboundPorts,omitempty"`
	ExcludeInboundPorts  *string `json:"excludeInboundPorts,omitempty"`
	IncludeIPRanges      *string `json:"includeIPRanges,omitempty"`
	ExcludeIPRanges      *string `json:"excludeIPRanges,omitempty"`
	ExcludeOutboundPorts *string `json:"excludeOutboundPorts,omitempty"`
}

// captureArgs are the init container's capture flags for pod: each
// annotation when present (an empty one included, as Istio reads it), the
// values otherwise. A malformed setting is an error naming it, so the pod is
// refused instead of running with capture other than asked.
func captureArgs(pod *corev1.Pod, v Values) ([]string, error) {
	setting := func(annotation string, value *string, def string) (string, string) {
		if a, ok := pod.Annotations[annotation]; ok {
			return strings.TrimSpace(a), "annotation " + annotation
		}
		if value != nil {
			return strings.TrimSpace(*value), "injector value for " + annotation
		}
		return def, "default of " + annotation
	}
	var args []string
	wrong := func(where, val string, err error) error {
		return fmt.Errorf("%s %q: %w", where, val, err)
	}

	in, where := setting(IncludeInboundPortsAnnotation, v.Capture.IncludeInboundPorts, "*")
	if in != "*" {
		ports, err := capture.ParsePorts(in)
		if err != nil {
			return nil, wrong(where, in, err)
		}
		in = joinInts(ports)
	}
	args = append(args, "--inbound-ports", in)

	ex, where := setting(ExcludeInboundPortsAnnotation, v.Capture.ExcludeInboundPorts, "")
	exPorts, err := capture.ParsePorts(ex)
	if err != nil {
		return nil, wrong(where, ex, err)
	}
	excluded := proxyInboundPorts
	if len(exPorts) > 0 {
		excluded += "," + joinInts(exPorts)
	}
	args = append(args, "--exclude-inbound-ports", excluded)

	for _, f := range []struct {
		annotation string
		value      *string
		def, flag  string
	}{
		{IncludeOutboundIPRangesAnnotation, v.Capture.IncludeIPRanges, "*", "--include-outbound-ip-ranges"},
		{ExcludeOutboundIPRangesAnnotation, v.Capture.ExcludeIPRanges, "", "--exclude-outbound-ip-ranges"},
	} {
		val, where := setting(f.annotation, f.value, f.def)
		cidrs, err := capture.ParseCIDRs(val)
		if err != nil {
			return nil, wrong(where, val, err)
		}
		if strings.Join(cidrs, ",") != f.def {
			args = append(args, f.flag, strings.Join(cidrs, ","))
		}
	}
	for _, f := range []struct {
		annotation string
		value      *string
		flag       string
	}{
		{IncludeOutboundPortsAnnotation, nil, "--include-outbound-ports"},
		{ExcludeOutboundPortsAnnotation, v.Capture.ExcludeOutboundPorts, "--exclude-outbound-ports"},
	} {
		val, where := setting(f.annotation, f.value, "")
		ports, err := capture.ParsePorts(val)
		if err != nil {
			return nil, wrong(where, val, err)
		}
		if len(ports) > 0 {
			args = append(args, f.flag, joinInts(ports))
		}
	}
	// DNS proxying: the app's port 53 goes to the proxy's DNS server
	// (a config that does not parse is Pod's error, from the proxy side).
	if pc, _, err := mergedProxyConfig(pod, v); err == nil && DNSCapture(pc) {
		args = append(args, "--redirect-dns")
	}
	return args, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
