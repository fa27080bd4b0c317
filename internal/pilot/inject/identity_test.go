package inject

import (
	"path"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/ca"
)

// With a CA address the sidecar is told to fetch its certificate from pilot
// with the token and root the injector mounts, so every path it is given
// must be one of those mounts.
func TestSidecarGetsItsCertificateFromPilot(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}},
	}
	v := testValues
	v.CAAddress = "mesh-pilot.mesh-system.svc:15012"
	v.ComponentLogLevel = "misc:error"
	out, err := Pod(pod, v)
	if err != nil {
		t.Fatal(err)
	}
	proxy := out.Spec.Containers[0]
	flag := func(name string) string {
		i := slices.Index(proxy.Args, name)
		if i < 0 || i+1 >= len(proxy.Args) {
			t.Fatalf("proxy args %v lack %s VALUE", proxy.Args, name)
		}
		return proxy.Args[i+1]
	}
	if got := flag("--ca-address"); got != v.CAAddress {
		t.Errorf("--ca-address %q, want %q", got, v.CAAddress)
	}
	if !slices.Contains(proxy.Args, "--xds-mtls") {
		t.Errorf("proxy args %v: no --xds-mtls, so the certificate is never presented to pilot", proxy.Args)
	}
	if got := flag("--component-log-level"); got != "misc:error" {
		t.Errorf("--component-log-level %q", got)
	}
	mounted := func(file string) (corev1.Volume, bool) {
		for _, m := range proxy.VolumeMounts {
			if path.Dir(file) == m.MountPath {
				for _, vol := range out.Spec.Volumes {
					if vol.Name == m.Name {
						return vol, true
					}
				}
			}
		}
		return corev1.Volume{}, false
	}
	tok, ok := mounted(flag("--sa-token"))
	if !ok || tok.Projected == nil || tok.Projected.Sources[0].ServiceAccountToken.Audience != TokenAudience ||
		tok.Projected.Sources[0].ServiceAccountToken.Path != path.Base(flag("--sa-token")) {
		t.Errorf("--sa-token %s is not the projected %s token the pod mounts", flag("--sa-token"), TokenAudience)
	}
	root, ok := mounted(flag("--ca-root-cert"))
	if !ok || root.ConfigMap == nil || root.ConfigMap.Name != ca.RootConfigMap || path.Base(flag("--ca-root-cert")) != ca.KeyRootCert {
		t.Errorf("--ca-root-cert %s is not key %s of the mounted %s ConfigMap", flag("--ca-root-cert"), ca.KeyRootCert, ca.RootConfigMap)
	}

	// Without a CA address the sidecar keeps the plaintext ADS connection.
	out, err = Pod(pod, testValues)
	if err != nil {
		t.Fatal(err)
	}
	if args := out.Spec.Containers[0].Args; slices.Contains(args, "--xds-mtls") || slices.Contains(args, "--ca-address") {
		t.Errorf("no caAddress, yet args %v", args)
	}
}
