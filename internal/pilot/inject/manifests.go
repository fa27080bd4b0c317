package inject

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Manifests injects the proxy into every pod and pod template of a YAML
// stream (Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,
// CronJobs) and copies other documents unchanged. name labels errors.
func Manifests(name string, in io.Reader, out io.Writer, v Values) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	first := true
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		res, err := injectDoc(raw, v)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if !first {
			if _, err := io.WriteString(out, "---\n"); err != nil {
				return err
			}
		}
		first = false
		if _, err := out.Write(res); err != nil {
			return err
		}
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

func injectDoc(raw []byte, v Values) ([]byte, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if tm.Kind == "" {
		return nil, errors.New("kind is missing")
	}
	var obj any
	var tmpl func() (*metav1.ObjectMeta, *corev1.PodSpec)
	switch tm.Kind {
	case "Pod":
		o := &corev1.Pod{}
		obj, tmpl = o, func() (*metav1.ObjectMeta, *corev1.PodSpec) { return &o.ObjectMeta, &o.Spec }
	case "Deployment":
		o := &appsv1.Deployment{}
		obj, tmpl = o, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "StatefulSet":
		o := &appsv1.StatefulSet{}
		obj, tmpl = o, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "DaemonSet":
		o := &appsv1.DaemonSet{}
		obj, tmpl = o, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "ReplicaSet":
		o := &appsv1.ReplicaSet{}
		obj, tmpl = o, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "Job":
		o := &batchv1.Job{}
		obj, tmpl = o, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	case "CronJob":
		o := &batchv1.CronJob{}
		obj, tmpl = o, func() (*metav1.ObjectMeta, *corev1.PodSpec) {
			return &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
		}
	default:
		return raw, nil
	}
	if err := yaml.UnmarshalStrict(raw, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	meta, spec := tmpl()
	pod := &corev1.Pod{ObjectMeta: *meta, Spec: *spec}
	if Skip(pod) != "" {
		return raw, nil
	}
	injected, err := Pod(pod, v)
	if err != nil {
		return nil, err
	}
	*meta, *spec = injected.ObjectMeta, injected.Spec
	return yaml.Marshal(obj)
}
