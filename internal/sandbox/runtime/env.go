package runtime

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// basePath is the PATH of every container: the host's tools, nothing else of its environment.
const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// containerEnv resolves a container's environment as the kubelet would:
// literal values, the downward API fields the mesh uses, and keys of
// ConfigMaps and Secrets, in order, so later entries may refer to earlier ones.
func containerEnv(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, c corev1.Container, podIP string) ([]string, map[string]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	set("PATH", basePath)
	set("HOSTNAME", pod.Name)
	set("HOME", "/")
	set("KUBERNETES_SERVICE_HOST", kubernetesService)
	set("KUBERNETES_SERVICE_PORT", "443")
	for _, from := range c.EnvFrom {
		data, err := sourceData(ctx, cs, pod.Namespace, from.ConfigMapRef, from.SecretRef)
		if err != nil {
			return nil, nil, fmt.Errorf("container %s: envFrom: %w", c.Name, err)
		}
		for k, v := range data {
			set(from.Prefix+k, v)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, err := envValue(ctx, cs, pod, e.ValueFrom, podIP)
		if err != nil {
			return nil, nil, fmt.Errorf("container %s: env %s: %w", c.Name, e.Name, err)
		}
		set(e.Name, v)
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, vars, nil
}

func envValue(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, src *corev1.EnvVarSource, podIP string) (string, error) {
	switch {
	case src.FieldRef != nil:
		return fieldValue(pod, src.FieldRef.FieldPath, podIP)
	case src.ResourceFieldRef != nil:
		// No resource accounting here; 0 reads as "no limit" to the mesh's binaries.
		return "0", nil
	case src.ConfigMapKeyRef != nil:
		cm, err := cs.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, src.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return cm.Data[src.ConfigMapKeyRef.Key], nil
	case src.SecretKeyRef != nil:
		s, err := cs.CoreV1().Secrets(pod.Namespace).Get(ctx, src.SecretKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return string(s.Data[src.SecretKeyRef.Key]), nil
	}
	return "", fmt.Errorf("unsupported valueFrom")
}

func fieldValue(pod *corev1.Pod, field, podIP string) (string, error) {
	switch field {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "status.podIP":
		return podIP, nil
	case "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return "127.0.0.1", nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if field == prefix {
			var b strings.Builder
			for k, v := range m {
				fmt.Fprintf(&b, "%s=%q\n", k, v)
			}
			return b.String(), nil
		}
		if strings.HasPrefix(field, prefix+"['") && strings.HasSuffix(field, "']") {
			return m[field[len(prefix)+2:len(field)-2]], nil
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported by the sandbox runtime", field)
}

func sourceData(ctx context.Context, cs kubernetes.Interface, ns string, cm *corev1.ConfigMapEnvSource, sec *corev1.SecretEnvSource) (map[string]string, error) {
	out := map[string]string{}
	if cm != nil {
		o, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		for k, v := range o.Data {
			out[k] = v
		}
	}
	if sec != nil {
		o, err := cs.CoreV1().Secrets(ns).Get(ctx, sec.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		for k, v := range o.Data {
			out[k] = string(v)
		}
	}
	return out, nil
}
