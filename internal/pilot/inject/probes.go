package inject

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"mesh.dev/mesh/internal/proxy/appprobe"
)

// RewriteProbesAnnotation turns the probe rewrite off ("false") or on
// ("true") for one pod, over the injector's rewriteAppHTTPProbe value.
const RewriteProbesAnnotation = "sidecar.istio.io/rewriteAppHTTPProbers"

// rewriteEnabled is Istio's rule: the pod's annotation, else the injector's
// value, which defaults to true.
func rewriteEnabled(pod *corev1.Pod, v Values) bool {
	switch strings.ToLower(pod.Annotations[RewriteProbesAnnotation]) {
	case "false":
		return false
	case "true":
		return true
	}
	return v.RewriteAppHTTPProbe == nil || *v.RewriteAppHTTPProbe
}

// rewriteProbes moves every HTTP, TCP and gRPC probe of the app containers to
// the agent's status port, where the kubelet reaches it without mTLS, and
// returns the original probes for the agent (ISTIO_KUBE_APP_PROBERS). Timing
// fields (delays, period, thresholds) stay on the rewritten probe; exec
// probes and probes already aimed at the proxy's ports are left alone, and so
// is a probe whose named port the container does not declare: the kubelet
// fails it as it would have without the mesh.
func rewriteProbes(cs []corev1.Container) appprobe.Probers {
	probers := appprobe.Probers{}
	for i := range cs {
		c := &cs[i]
		for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
			if p == nil {
				continue
			}
			pr, ok := prober(c, p)
			if !ok {
				continue
			}
			path := appprobe.Path(c.Name, kind)
			probers[path] = pr
			p.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromInt32(appprobe.StatusPort), Scheme: corev1.URISchemeHTTP,
			}}
		}
	}
	return probers
}

// prober turns one probe into the agent's form, its port resolved.
func prober(c *corev1.Container, p *corev1.Probe) (appprobe.Prober, bool) {
	out := appprobe.Prober{TimeoutSeconds: p.TimeoutSeconds}
	switch {
	case p.HTTPGet != nil:
		port, ok := probePort(c, p.HTTPGet.Port)
		if !ok {
			return out, false
		}
		h := &appprobe.HTTPGet{Path: p.HTTPGet.Path, Port: appprobe.Port(port), Host: p.HTTPGet.Host, Scheme: string(p.HTTPGet.Scheme)}
		for _, hd := range p.HTTPGet.HTTPHeaders {
			h.HTTPHeaders = append(h.HTTPHeaders, appprobe.Header{Name: hd.Name, Value: hd.Value})
		}
		out.HTTPGet = h
	case p.TCPSocket != nil:
		port, ok := probePort(c, p.TCPSocket.Port)
		if !ok {
			return out, false
		}
		out.TCPSocket = &appprobe.TCPSocket{Port: appprobe.Port(port), Host: p.TCPSocket.Host}
	case p.GRPC != nil:
		if proxyPort(p.GRPC.Port) || p.GRPC.Port < 1 || p.GRPC.Port > 65535 {
			return out, false
		}
		out.GRPC = &appprobe.GRPC{Port: appprobe.Port(p.GRPC.Port), Service: p.GRPC.Service}
	default:
		return out, false
	}
	return out, true
}

func probePort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	n := int32(0)
	if p.Type == intstr.Int {
		n = p.IntVal
	} else {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				n = cp.ContainerPort
			}
		}
	}
	if n < 1 || n > 65535 || proxyPort(n) {
		return 0, false
	}
	return n, true
}

// proxyPort: a probe of the proxy's own status, health or metrics port is
// already answered without mTLS.
func proxyPort(p int32) bool { return p == 15020 || p == 15021 || p == 15090 }
