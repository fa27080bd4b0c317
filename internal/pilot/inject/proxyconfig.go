package inject

import (
	"fmt"
	"maps"
	"math"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshapi "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/enforced"
)

// Istio's per-pod proxy settings.
const (
	// ProxyConfigAnnotation holds a ProxyConfig (YAML) merged over
	// meshConfig.defaultConfig.
	ProxyConfigAnnotation       = "proxy.istio.io/config"
	ProxyCPUAnnotation          = "sidecar.istio.io/proxyCPU"
	ProxyCPULimitAnnotation     = "sidecar.istio.io/proxyCPULimit"
	ProxyMemoryAnnotation       = "sidecar.istio.io/proxyMemory"
	ProxyMemoryLimitAnnotation  = "sidecar.istio.io/proxyMemoryLimit"
	defaultConcurrency          = 2 // Istio's when neither the config nor a CPU limit says
	holdTimeoutSeconds          = 60
	proxyConfigFieldsCarriedOut = "holdApplicationUntilProxyStarts, terminationDrainDuration, concurrency, proxyMetadata"
	// terminationDrainEnv is what mesh-proxy reads terminationDrainDuration
	// from (agent.TerminationDrainEnv; the test checks they agree).
	terminationDrainEnv = "TERMINATION_DRAIN_DURATION_SECONDS"
)

// ParseProxyConfig reads a proxy.istio.io/config value: istio.io/api's
// mesh.v1alpha1.ProxyConfig in YAML. A field ProxyConfig does not have, or
// a value of the wrong type, is an error naming it.
func ParseProxyConfig(value string) (*meshapi.ProxyConfig, error) {
	pc := &meshapi.ProxyConfig{}
	js, err := yaml.YAMLToJSON([]byte(value))
	if err != nil {
		return nil, fmt.Errorf("not YAML: %v", err)
	}
	if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
		return pc, nil
	}
	if err := protojson.Unmarshal(js, pc); err != nil {
		return nil, fmt.Errorf("not a ProxyConfig (https://istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#ProxyConfig): %v", err)
	}
	return pc, nil
}

// ProxyConfigNotCarriedOut lists the fields set in pc that mesh does not
// act on per pod, sorted, each as "field: what happens".
func ProxyConfigNotCarriedOut(pc *meshapi.ProxyConfig) []string {
	var out []string
	pc.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !enforced.ProxyConfigCarriedOut(fd.JSONName()) {
			out = append(out, fd.JSONName())
		}
		return true
	})
	sort.Strings(out)
	return out
}

// The proxyMetadata keys of Istio's DNS proxying: the proxy answers the
// pod's DNS from pilot's name table, and auto-allocates addresses for
// ServiceEntry hosts without any (docs/lifecycle.md).
const (
	DNSCaptureKey      = "ISTIO_META_DNS_CAPTURE"
	DNSAutoAllocateKey = "ISTIO_META_DNS_AUTO_ALLOCATE"
)

// DNSCapture reports whether pc turns DNS proxying on.
func DNSCapture(pc *meshapi.ProxyConfig) bool {
	on, err := strconv.ParseBool(pc.GetProxyMetadata()[DNSCaptureKey])
	return err == nil && on
}

// checkDNSSwitches refuses a DNS proxying switch that is not a bool: the
// proxy would stop at start on it.
func checkDNSSwitches(pc *meshapi.ProxyConfig) error {
	for _, k := range []string{DNSCaptureKey, DNSAutoAllocateKey} {
		if v, ok := pc.GetProxyMetadata()[k]; ok && v != "" {
			if _, err := strconv.ParseBool(v); err != nil {
				return fmt.Errorf("proxyMetadata.%s %q: want \"true\" or \"false\"", k, v)
			}
		}
	}
	return nil
}

// mergedProxyConfig is the pod's proxy config as Istio computes it: the
// annotation's fields replace meshConfig.defaultConfig's, except
// proxyMetadata, merged key by key (the annotation's win).
func mergedProxyConfig(pod *corev1.Pod, v Values) (*meshapi.ProxyConfig, []string, error) {
	pc := &meshapi.ProxyConfig{}
	if v.MeshDefaults != nil {
		pc = proto.Clone(v.MeshDefaults).(*meshapi.ProxyConfig)
	}
	a, ok := pod.Annotations[ProxyConfigAnnotation]
	if !ok {
		return pc, nil, nil
	}
	over, err := ParseProxyConfig(a)
	if err == nil {
		err = checkDNSSwitches(over)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("annotation %s: %w", ProxyConfigAnnotation, err)
	}
	meta := maps.Clone(pc.ProxyMetadata)
	over.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		pc.ProtoReflect().Set(fd, val)
		return true
	})
	if len(meta) > 0 {
		maps.Copy(meta, over.ProxyMetadata)
		pc.ProxyMetadata = meta
	}
	var notes []string
	for _, f := range ProxyConfigNotCarriedOut(over) {
		notes = append(notes, fmt.Sprintf("annotation %s: field %s is not carried out by this mesh (it acts on %s)", ProxyConfigAnnotation, f, proxyConfigFieldsCarriedOut))
	}
	return pc, notes, nil
}

// applyProxyConfig writes pc into the proxy container: proxyMetadata as
// environment variables (as Istio's template does), terminationDrainDuration
// as TERMINATION_DRAIN_DURATION_SECONDS (whole seconds, rounded up), and
// concurrency as --concurrency (unset: the CPU limit rounded up, else 2,
// as Istio; 0: every CPU).
func applyProxyConfig(c *corev1.Container, pc *meshapi.ProxyConfig) {
	keys := make([]string, 0, len(pc.ProxyMetadata))
	for k := range pc.ProxyMetadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		setEnv(c, k, pc.ProxyMetadata[k])
	}
	if d := pc.GetTerminationDrainDuration(); d != nil {
		secs := int64(math.Ceil(d.AsDuration().Seconds()))
		setEnv(c, terminationDrainEnv, strconv.FormatInt(max(secs, 0), 10))
	}
	n := int64(defaultConcurrency)
	switch {
	case pc.GetConcurrency() != nil:
		n = int64(pc.GetConcurrency().GetValue())
	case !c.Resources.Limits.Cpu().IsZero():
		n = c.Resources.Limits.Cpu().MilliValue()
		n = (n + 999) / 1000
	}
	c.Args = append(c.Args, "--concurrency", strconv.FormatInt(n, 10))
}

// setEnv sets name on c, replacing an earlier value.
func setEnv(c *corev1.Container, name, value string) {
	for i := range c.Env {
		if c.Env[i].Name == name {
			c.Env[i] = corev1.EnvVar{Name: name, Value: value}
			return
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
}

// proxyResources are the proxy container's resources: when any of the
// sidecar.istio.io/proxyCPU|Memory[Limit] annotations is present, those
// annotations alone (as Istio's template, which then ignores the values'
// resources); otherwise the values'. A malformed quantity is an error
// naming the annotation.
func proxyResources(pod *corev1.Pod, v Values) (corev1.ResourceRequirements, error) {
	set := []struct {
		annotation string
		limit      bool
		name       corev1.ResourceName
	}{
		{ProxyCPUAnnotation, false, corev1.ResourceCPU},
		{ProxyMemoryAnnotation, false, corev1.ResourceMemory},
		{ProxyCPULimitAnnotation, true, corev1.ResourceCPU},
		{ProxyMemoryLimitAnnotation, true, corev1.ResourceMemory},
	}
	var out corev1.ResourceRequirements
	any := false
	for _, s := range set {
		a, ok := pod.Annotations[s.annotation]
		if !ok {
			continue
		}
		any = true
		q, err := resource.ParseQuantity(strings.TrimSpace(a))
		if err != nil {
			return out, fmt.Errorf("annotation %s: %q is not a quantity (write e.g. 100m for CPU, 128Mi for memory)", s.annotation, a)
		}
		list := &out.Requests
		if s.limit {
			list = &out.Limits
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[s.name] = q
	}
	if !any {
		return *v.Resources.DeepCopy(), nil
	}
	for name, lim := range out.Limits {
		if req, ok := out.Requests[name]; ok && req.Cmp(lim) > 0 {
			return out, fmt.Errorf("annotations: the proxy's %s request %s is above its limit %s", name, req.String(), lim.String())
		}
	}
	return out, nil
}

// holdApplication makes the classic layout hold the app until the proxy is
// ready, as Istio does: the proxy is the first container (it is already)
// with a postStart hook that waits for its readiness, and the kubelet
// starts the next container only once that hook has completed.
func holdApplication(c *corev1.Container) {
	c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"mesh-proxy", "wait", "--timeoutSeconds", strconv.Itoa(holdTimeoutSeconds)},
	}}}
}

// Warnings says what of the pod's proxy settings the injector accepts
// without carrying out (the proxy.istio.io/config fields it does not act
// on, a fallback opt-in that is not a valid value), for the admission
// response's warnings; an annotation that fails to parse is Pod's error,
// not a warning.
func Warnings(pod *corev1.Pod, v Values) []string {
	_, notes, err := mergedProxyConfig(pod, v)
	if err != nil {
		notes = nil
	}
	return append(notes, fallbackWarnings(pod, v)...)
}

// MeshDefaults reads meshConfig.defaultConfig from a mesh config (the
// `mesh` ConfigMap's key, YAML), for injecting outside pilot.
func MeshDefaults(data []byte) (*meshapi.ProxyConfig, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("mesh config: not YAML: %v", err)
	}
	if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
		return nil, nil
	}
	mc := &meshapi.MeshConfig{}
	if err := protojson.Unmarshal(js, mc); err != nil {
		return nil, fmt.Errorf("mesh config: not a MeshConfig: %v", err)
	}
	return mc.GetDefaultConfig(), nil
}
