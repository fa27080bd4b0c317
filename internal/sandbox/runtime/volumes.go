package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// mount is a bind mount into a container's mount namespace.
type mount struct {
	src, dst string
	file     bool
	readOnly bool
}

// prepareVolumes writes the pod's volumes into dir, one folder per volume:
// ConfigMaps, Secrets, emptyDirs and projected volumes (ServiceAccount
// tokens bound to the pod, ConfigMaps, Secrets, downward API). They are
// written once at start; later changes of their sources are not followed.
func (w *podWorker) prepareVolumes(ctx context.Context, dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range w.pod.Spec.Volumes {
		d := filepath.Join(dir, v.Name)
		if err := os.MkdirAll(d, 0o777); err != nil {
			return nil, err
		}
		os.Chmod(d, 0o777) // emptyDirs are written by containers running as any user
		var err error
		switch {
		case v.ConfigMap != nil:
			err = w.writeConfigMap(ctx, d, v.ConfigMap.Name, v.ConfigMap.Items, ptr.Deref(v.ConfigMap.Optional, false))
		case v.Secret != nil:
			err = w.writeSecret(ctx, d, v.Secret.SecretName, v.Secret.Items, ptr.Deref(v.Secret.Optional, false))
		case v.EmptyDir != nil:
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ServiceAccountToken != nil:
					err = w.writeToken(ctx, d, s.ServiceAccountToken)
				case s.ConfigMap != nil:
					err = w.writeConfigMap(ctx, d, s.ConfigMap.Name, s.ConfigMap.Items, ptr.Deref(s.ConfigMap.Optional, false))
				case s.Secret != nil:
					err = w.writeSecret(ctx, d, s.Secret.Name, s.Secret.Items, ptr.Deref(s.Secret.Optional, false))
				case s.DownwardAPI != nil:
					for _, it := range s.DownwardAPI.Items {
						if it.FieldRef == nil {
							continue
						}
						val, ferr := fieldValue(w.pod, it.FieldRef.FieldPath, w.ip.String())
						if ferr != nil {
							err = ferr
							break
						}
						err = writeFile(d, it.Path, []byte(val))
					}
				}
				if err != nil {
					break
				}
			}
		default:
			err = fmt.Errorf("volume type not supported by the sandbox runtime")
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		out[v.Name] = d
	}
	return out, nil
}

func writeFile(dir, rel string, data []byte) error {
	p := filepath.Join(dir, filepath.Clean("/"+rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// Readable by every user: containers run as their own uids and there is no fsGroup handling.
	return os.WriteFile(p, data, 0o644)
}

func writeItems(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := writeFile(dir, k, v); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %q not found", it.Key)
		}
		if err := writeFile(dir, it.Path, v); err != nil {
			return err
		}
	}
	return nil
}

func (w *podWorker) writeConfigMap(ctx context.Context, dir, name string, items []corev1.KeyToPath, optional bool) error {
	cm, err := w.rt.cs.CoreV1().ConfigMaps(w.pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional {
			return nil
		}
		return fmt.Errorf("configmap %s: %w", name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return writeItems(dir, data, items)
}

func (w *podWorker) writeSecret(ctx context.Context, dir, name string, items []corev1.KeyToPath, optional bool) error {
	s, err := w.rt.cs.CoreV1().Secrets(w.pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if optional {
			return nil
		}
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return writeItems(dir, s.Data, items)
}

// writeToken asks the API server for a ServiceAccount token bound to the pod,
// as the kubelet does for projected token volumes.
func (w *podWorker) writeToken(ctx context.Context, dir string, p *corev1.ServiceAccountTokenProjection) error {
	sa := w.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: p.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: w.pod.Name, UID: w.pod.UID},
	}}
	if p.Audience != "" {
		req.Spec.Audiences = []string{p.Audience}
	}
	tr, err := w.rt.cs.CoreV1().ServiceAccounts(w.pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for service account %s: %w", sa, err)
	}
	return writeFile(dir, p.Path, []byte(tr.Status.Token))
}

// containerMounts lists a container's volume mounts, plus the pod's hosts file.
func containerMounts(c corev1.Container, vols map[string]string, hostsFile, resolvFile string) ([]mount, error) {
	ms := []mount{{src: hostsFile, dst: "/etc/hosts", file: true, readOnly: true}}
	if resolvFile != "" {
		ms = append(ms, mount{src: resolvFile, dst: "/etc/resolv.conf", file: true, readOnly: true})
	}
	for _, m := range c.VolumeMounts {
		src, ok := vols[m.Name]
		if !ok {
			return nil, fmt.Errorf("container %s: volume %q not defined", c.Name, m.Name)
		}
		mt := mount{src: src, dst: m.MountPath, readOnly: m.ReadOnly}
		if m.SubPath != "" {
			mt.src = filepath.Join(src, filepath.Clean("/"+m.SubPath))
			if st, err := os.Stat(mt.src); err == nil && !st.IsDir() {
				mt.file = true
			} else if os.IsNotExist(err) {
				os.MkdirAll(mt.src, 0o777)
			}
		}
		ms = append(ms, mt)
	}
	// Parents before children, so a mount nested in another lands inside it.
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.Count(filepath.Clean(ms[i].dst), "/") < strings.Count(filepath.Clean(ms[j].dst), "/")
	})
	return ms, nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// mountScript is the shell run inside the container's fresh mount namespace
// before the binary: it bind-mounts the volumes with the mount program at
// mountBin (a descriptor of the host's, so that a volume covering /usr/bin
// does not hide it from the next mount). Missing mount points are created on
// the host (empty folders or files), since a bind mount needs one.
func mountScript(ms []mount, mountBin string) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, m := range ms {
		if m.file {
			fmt.Fprintf(&b, "[ -e %[1]s ] || { mkdir -p \"$(dirname %[1]s)\" && : > %[1]s; }\n", shellQuote(m.dst))
		} else {
			fmt.Fprintf(&b, "mkdir -p %s\n", shellQuote(m.dst))
		}
		fmt.Fprintf(&b, "%s --bind %s %s\n", mountBin, shellQuote(m.src), shellQuote(m.dst))
		if m.readOnly {
			fmt.Fprintf(&b, "%s -o remount,bind,ro %s\n", mountBin, shellQuote(m.dst))
		}
	}
	return b.String()
}
