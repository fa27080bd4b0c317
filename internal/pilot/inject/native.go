package inject

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/version"
)

// NativeSidecarAnnotation is Istio's per-pod switch: "true" or "false" wins
// over the injector's NativeSidecars and the cluster's version.
const NativeSidecarAnnotation = "sidecar.istio.io/nativeSidecar"

// nativeSince is the first Kubernetes minor release whose kubelet runs
// native sidecars by default (the SidecarContainers feature gate beta and on).
var nativeSince = version.MajorMinor(1, 29)

// nativeSidecar decides the layout: the pod's annotation, else the values'
// NativeSidecars, else the cluster's version (1.29 or later; an unknown
// version gets the classic layout, which every cluster runs). Native
// sidecars asked for on a cluster known to be older refuse the pod: its
// API server would drop restartPolicy and the proxy, never exiting, would
// hold the pod in its init phase forever.
func nativeSidecar(pod *corev1.Pod, v Values) (bool, error) {
	var kube *version.Version
	if v.KubeVersion != "" {
		var err error
		if kube, err = version.ParseGeneric(v.KubeVersion); err != nil {
			return false, fmt.Errorf("Kubernetes version %q: %v", v.KubeVersion, err)
		}
	}
	want, from := false, ""
	switch a, ok := pod.Annotations[NativeSidecarAnnotation]; {
	case ok:
		b, err := strconv.ParseBool(a)
		if err != nil {
			return false, fmt.Errorf("annotation %s: %q is not true or false", NativeSidecarAnnotation, a)
		}
		want, from = b, "annotation "+NativeSidecarAnnotation
	case v.NativeSidecars != nil:
		want, from = *v.NativeSidecars, "injector value nativeSidecars (ENABLE_NATIVE_SIDECARS)"
	default:
		return kube != nil && kube.AtLeast(nativeSince), nil
	}
	if want && kube != nil && !kube.AtLeast(nativeSince) {
		return false, fmt.Errorf("%s asks for native sidecars, but the cluster runs Kubernetes %s and they need %s or later: set it to \"false\"",
			from, v.KubeVersion, nativeSince)
	}
	return want, nil
}

// asNativeSidecar turns the proxy container into a native sidecar, as
// Istio's template does: restartPolicy Always, and a startup probe on the
// proxy's readiness, so the kubelet starts the init containers after it
// (the app's own among them) and the app only once the proxy is ready,
// and stops it after the app's containers have exited.
func asNativeSidecar(c *corev1.Container) {
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	c.StartupProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(15021)}},
		PeriodSeconds:    1,
		TimeoutSeconds:   3,
		FailureThreshold: 600,
	}
}
