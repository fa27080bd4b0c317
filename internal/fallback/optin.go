// Package fallback is the node agent that lets a pod's traffic bypass its
// dead or hung sidecar, where the pod opted in and security policy allows
// it (docs/fallback.md): it reads the opt-in, watches the proxy's health
// port, vetoes on policy, switches the pod's capture rules and tells the
// API server (a pod condition, Events) so pilot can tell the pod's peers.
package fallback

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The opt-in: a pod annotation, or a namespace label of the same name.
const (
	Annotation            = "mesh.io/fallback"
	HangTimeoutAnnotation = "mesh.io/fallback-hang-timeout"

	ModeDirect = "direct" // fall back to direct connections while the proxy is down
	ModeNone   = "none"   // fail closed (the default)

	DefaultHangTimeout = time.Second
	MinHangTimeout     = time.Second
	MaxHangTimeout     = 2 * time.Second
)

// Mode resolves a pod's choice: its annotation wins, then its namespace's
// label, then the mesh default (the injector's values; "" is none). where
// names what decided it. A value other than direct or none is an error
// naming the field; the caller fails closed.
func Mode(podAnnotations, nsLabels map[string]string, meshDefault string) (mode, where string, err error) {
	for _, c := range []struct{ v, where string }{
		{podAnnotations[Annotation], "pod annotation " + Annotation},
		{nsLabels[Annotation], "namespace label " + Annotation},
		{meshDefault, "values.sidecarInjectorWebhook.fallback"},
	} {
		v := strings.TrimSpace(c.v)
		switch v {
		case "":
			continue
		case ModeDirect, ModeNone:
			return v, c.where, nil
		default:
			return ModeNone, c.where, fmt.Errorf("%s: %q is not a fallback mode (want %q or %q); the pod fails closed", c.where, c.v, ModeDirect, ModeNone)
		}
	}
	return ModeNone, "default", nil
}

// HangTimeout reads the pod's hang timeout: how long its health port may
// stay silent before the proxy counts as hung.
func HangTimeout(pod *corev1.Pod) (time.Duration, error) {
	s, ok := pod.Annotations[HangTimeoutAnnotation]
	if !ok {
		return DefaultHangTimeout, nil
	}
	d, err := ParseHangTimeout(s)
	if err != nil {
		return 0, fmt.Errorf("pod annotation %s: %w; the pod fails closed", HangTimeoutAnnotation, err)
	}
	return d, nil
}

// ParseHangTimeout reads a value of the hang timeout annotation.
func ParseHangTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < MinHangTimeout || d > MaxHangTimeout {
		return 0, fmt.Errorf("%q is not a duration from %v to %v (e.g. 1500ms)", s, MinHangTimeout, MaxHangTimeout)
	}
	return d, nil
}
