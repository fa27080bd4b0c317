// Package inject adds the mesh proxy to pods: the sidecar container and the
// init container that redirects the pod's traffic through it. The admission
// webhook and `mesh kube-inject` share this code, so a pod injected offline
// is the pod the webhook would have produced.
package inject

import (
	"encoding/json"
	"fmt"
	"strings"

	meshapi "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/fallback"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/proxy/appprobe"
)

// Labels and annotations the injector reads and writes.
const (
	InjectLabel         = "sidecar.mesh.io/inject"  // "false" opts a pod out
	IstioInjectAnnot    = "sidecar.istio.io/inject" // honoured for Istio users
	StatusAnnotation    = "sidecar.mesh.io/status"  // what was injected
	RevisionLabel       = "mesh.io/rev"
	NamespaceLabel      = "mesh-injection"
	IstioNamespaceLabel = "istio-injection"
	CanonicalNameLabel  = "service.istio.io/canonical-name"
	CanonicalRevLabel   = "service.istio.io/canonical-revision"

	ProxyContainer = "mesh-proxy"
	InitContainer  = "mesh-init"
	ProxyUID       = 1337
	tokenVolume    = "mesh-token"
	rootVolume     = "mesh-ca-root-cert"
	tokenMountPath = "/var/run/secrets/tokens"
	tokenPath      = "istio-token"
	rootMountPath  = "/var/run/secrets/mesh"
	// rootCertKey is the key pilot publishes the root under (ca.KeyRootCert).
	rootCertKey = "root-cert.pem"
	// TokenAudience is the audience of the projected token the proxy sends
	// to the certificate service.
	TokenAudience = "istio-ca"
)

// Values configure what is injected; they come from the
// mesh-sidecar-injector ConfigMap (key "values").
type Values struct {
	ProxyImage        string                      `json:"proxyImage"`
	ImagePullPolicy   corev1.PullPolicy           `json:"imagePullPolicy,omitempty"`
	LogLevel          string                      `json:"logLevel,omitempty"`
	ComponentLogLevel string                      `json:"componentLogLevel,omitempty"`
	Resources         corev1.ResourceRequirements `json:"resources,omitempty"`
	Revision          string                      `json:"revision,omitempty"`
	DiscoveryAddress  string                      `json:"discoveryAddress"`
	// CAAddress is pilot's certificate service (its mTLS port). When set,
	// sidecars get their workload certificate from it with their projected
	// token and reach DiscoveryAddress over mTLS with that certificate.
	CAAddress string `json:"caAddress,omitempty"`
	// RewriteAppHTTPProbe moves the app's HTTP, TCP and gRPC probes to the
	// agent's status port (Istio's sidecarInjectorWebhook.rewriteAppHTTPProbe);
	// unset means true, as in Istio. A pod's RewriteProbesAnnotation wins.
	RewriteAppHTTPProbe *bool `json:"rewriteAppHTTPProbe,omitempty"`
	// Capture are the defaults of the traffic.sidecar.istio.io annotations.
	Capture Capture `json:"capture,omitempty"`
	// NativeSidecars puts the proxy among the init containers with
	// restartPolicy Always (Kubernetes' native sidecars), as Istio's
	// ENABLE_NATIVE_SIDECARS does; unset means when KubeVersion is 1.29 or
	// later, Istio's default since 1.27. A pod's NativeSidecarAnnotation wins.
	NativeSidecars *bool `json:"nativeSidecars,omitempty"`
	// EnablePrometheusMerge points pods' prometheus.io annotations at the
	// proxy's merged metrics (status port 15020, /stats/prometheus), as
	// Istio's meshConfig.enablePrometheusMerge; unset means true, as in
	// Istio. Pilot fills it from its mesh config when the values do not say.
	EnablePrometheusMerge *bool `json:"enablePrometheusMerge,omitempty"`
	// Fallback is the mesh-wide default of the fallback opt-in
	// (docs/fallback.md): "none" (or unset) fails closed, "direct" lets
	// every injected pod fall back unless its namespace label or its
	// annotation mesh.io/fallback says none.
	Fallback string `json:"fallback,omitempty"`
	// NamespaceLabels are the labels of the pod's namespace, filled in by
	// the webhook (the namespace's mesh.io/fallback label); nil: unknown.
	NamespaceLabels map[string]string `json:"-"`
	// KubeVersion is the API server's version (its gitVersion), filled in
	// by whoever injects for a cluster (pilot's webhook, kube-inject reading
	// the cluster); "" when unknown.
	KubeVersion string `json:"-"`
	// MeshDefaults is meshConfig.defaultConfig, which a pod's
	// proxy.istio.io/config is merged over; filled in from the mesh config
	// by pilot and kube-inject. nil: none.
	MeshDefaults *meshapi.ProxyConfig `json:"-"`
}

// ParseValues reads injector values, naming what is missing or malformed.
func ParseValues(data []byte) (Values, error) {
	var v Values
	if err := yaml.UnmarshalStrict(data, &v); err != nil {
		return Values{}, fmt.Errorf("injector values: %w", err)
	}
	if v.ProxyImage == "" {
		return Values{}, fmt.Errorf("injector values: proxyImage is required (e.g. proxyImage: docker.io/mesh/proxy:1.0)")
	}
	if v.DiscoveryAddress == "" {
		return Values{}, fmt.Errorf("injector values: discoveryAddress is required (e.g. mesh-pilot.mesh-system.svc:15012)")
	}
	if _, _, err := fallback.Mode(nil, nil, v.Fallback); err != nil {
		return Values{}, fmt.Errorf("injector values: fallback: %q is not a fallback mode (want %q or %q)", v.Fallback, fallback.ModeDirect, fallback.ModeNone)
	}
	if v.LogLevel == "" {
		v.LogLevel = "info"
	}
	if v.ImagePullPolicy == "" {
		v.ImagePullPolicy = corev1.PullIfNotPresent
	}
	return v, nil
}

// Status is recorded in StatusAnnotation so tools can tell what was added.
type Status struct {
	InitContainers []string `json:"initContainers"`
	Containers     []string `json:"containers"`
	Volumes        []string `json:"volumes"`
	Revision       string   `json:"revision"`
}

// Skip says why a pod is not injected, or "" when it should be.
func Skip(pod *corev1.Pod) string {
	switch {
	case pod.Annotations[StatusAnnotation] != "":
		return "already injected"
	case hasContainer(pod.Spec.Containers, ProxyContainer) || hasContainer(pod.Spec.InitContainers, ProxyContainer):
		return "already has a " + ProxyContainer + " container"
	case strings.EqualFold(pod.Labels[InjectLabel], "false"):
		return "label " + InjectLabel + "=false"
	case strings.EqualFold(pod.Annotations[IstioInjectAnnot], "false") || strings.EqualFold(pod.Labels[IstioInjectAnnot], "false"):
		return "annotation " + IstioInjectAnnot + "=false"
	case pod.Spec.HostNetwork:
		return "pod uses the host network; its traffic cannot be captured"
	}
	return ""
}

func hasContainer(cs []corev1.Container, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

// Pod returns a copy of pod with the proxy injected. It does not check Skip.
func Pod(pod *corev1.Pod, v Values) (*corev1.Pod, error) {
	out := pod.DeepCopy()
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Labels[model.TLSModeLabel] = "istio"
	if _, ok := out.Labels[CanonicalNameLabel]; !ok {
		out.Labels[CanonicalNameLabel] = canonicalName(pod)
	}
	if _, ok := out.Labels[CanonicalRevLabel]; !ok {
		rev := pod.Labels["version"]
		if rev == "" {
			rev = "latest"
		}
		out.Labels[CanonicalRevLabel] = rev
	}
	if v.Revision != "" && v.Revision != "default" {
		out.Labels[RevisionLabel] = v.Revision
	}

	native, err := nativeSidecar(pod, v)
	if err != nil {
		return nil, err
	}
	initC, err := initContainer(pod, v)
	if err != nil {
		return nil, err
	}
	proxy := proxyContainer(pod, v)
	if proxy.Resources, err = proxyResources(pod, v); err != nil {
		return nil, err
	}
	pc, _, err := mergedProxyConfig(pod, v)
	if err != nil {
		return nil, err
	}
	applyProxyConfig(&proxy, pc)
	if rewriteEnabled(pod, v) {
		if probers := rewriteProbes(out.Spec.Containers); len(probers) > 0 {
			env, err := probers.Encode()
			if err != nil {
				return nil, err
			}
			proxy.Env = append(proxy.Env, corev1.EnvVar{Name: appprobe.EnvVar, Value: env})
		}
	}
	applyFallback(out, v)
	if err := applyPrometheusMerge(out, &proxy, v); err != nil {
		return nil, err
	}
	st := Status{InitContainers: []string{InitContainer}, Volumes: []string{tokenVolume, rootVolume}, Revision: revisionOrDefault(v.Revision)}
	if native {
		// The capture first, then the proxy, then the app's init containers:
		// theirs is the pod's captured traffic, and the proxy is ready for it.
		asNativeSidecar(&proxy)
		out.Spec.InitContainers = append([]corev1.Container{initC, proxy}, out.Spec.InitContainers...)
		st.InitContainers = append(st.InitContainers, ProxyContainer)
		st.Containers = []string{}
	} else {
		out.Spec.InitContainers = append([]corev1.Container{initC}, out.Spec.InitContainers...)
		// The proxy goes first so it starts before the application; with
		// holdApplicationUntilProxyStarts its postStart hook holds the app
		// until it is ready. (A native sidecar holds the app anyway.)
		if pc.GetHoldApplicationUntilProxyStarts().GetValue() {
			holdApplication(&proxy)
		}
		out.Spec.Containers = append([]corev1.Container{proxy}, out.Spec.Containers...)
		st.Containers = []string{ProxyContainer}
	}
	expiry := int64(43200)
	out.Spec.Volumes = append(out.Spec.Volumes,
		corev1.Volume{Name: tokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: &expiry, Path: tokenPath,
			}}},
		}}},
		corev1.Volume{Name: rootVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: rootVolume},
		}}},
	)
	status, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	out.Annotations[StatusAnnotation] = string(status)
	return out, nil
}

func revisionOrDefault(r string) string {
	if r == "" {
		return "default"
	}
	return r
}

func canonicalName(pod *corev1.Pod) string {
	for _, k := range []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"} {
		if v := pod.Labels[k]; v != "" {
			return v
		}
	}
	name := pod.Name
	if name == "" {
		name = pod.GenerateName
	}
	return strings.TrimSuffix(name, "-")
}

// initContainer redirects the pod's TCP traffic to the proxy (outbound to
// 15001, inbound to 15006), sparing the proxy's own traffic (uid 1337) and
// ports, and what the pod's traffic annotations leave out. It needs
// NET_ADMIN for that, and only while it runs.
func initContainer(pod *corev1.Pod, v Values) (corev1.Container, error) {
	capture, err := captureArgs(pod, v)
	if err != nil {
		return corev1.Container{}, err
	}
	root := int64(0)
	no := false
	return corev1.Container{
		Name:            InitContainer,
		Image:           v.ProxyImage,
		ImagePullPolicy: v.ImagePullPolicy,
		Args: append([]string{
			"init",
			"--proxy-uid", fmt.Sprint(ProxyUID),
			"--outbound-port", "15001",
			"--inbound-port", "15006",
		}, capture...),
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &root,
			RunAsNonRoot:             &no,
			AllowPrivilegeEscalation: &no,
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("10Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("50Mi")},
		},
	}, nil
}

func proxyContainer(pod *corev1.Pod, v Values) corev1.Container {
	uid := int64(ProxyUID)
	yes, no := true, false
	args := []string{"--xds-address", v.DiscoveryAddress, "--log-level", v.LogLevel, "--prometheus-address", "0.0.0.0:15090"}
	if v.ComponentLogLevel != "" {
		args = append(args, "--component-log-level", v.ComponentLogLevel)
	}
	if v.CAAddress != "" {
		args = append(args, "--ca-address", v.CAAddress,
			"--ca-root-cert", rootMountPath+"/"+rootCertKey,
			"--sa-token", tokenMountPath+"/"+tokenPath,
			"--xds-mtls")
	}
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	env := []corev1.EnvVar{
		fieldEnv("POD_NAME", "metadata.name"),
		fieldEnv("POD_NAMESPACE", "metadata.namespace"),
		fieldEnv("INSTANCE_IP", "status.podIP"),
		fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
		{Name: "SERVICE_NAME", Value: canonicalName(pod)},
		{Name: "SERVICE_VERSION", Value: pod.Labels["version"]},
	}
	env = append(env, MetadataEnv(pod)...)
	return corev1.Container{
		Name:            ProxyContainer,
		Image:           v.ProxyImage,
		ImagePullPolicy: v.ImagePullPolicy,
		Args:            args,
		Env:             env,
		Ports: []corev1.ContainerPort{
			{Name: "http-envoy-prom", ContainerPort: 15090, Protocol: corev1.ProtocolTCP},
			{Name: "http-health", ContainerPort: 15021, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(15021)}},
			PeriodSeconds:    2,
			FailureThreshold: 30,
		},
		Resources: v.Resources,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &uid,
			RunAsGroup:               &uid,
			RunAsNonRoot:             &yes,
			ReadOnlyRootFilesystem:   &yes,
			AllowPrivilegeEscalation: &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: tokenVolume, MountPath: tokenMountPath, ReadOnly: true},
			{Name: rootVolume, MountPath: rootMountPath, ReadOnly: true},
		},
	}
}
