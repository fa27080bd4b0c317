package inject

import (
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/proxy/metricsmerge"
)

// Prometheus' scrape annotations and Istio's per-pod switch for merging.
const (
	PromScrapeAnnotation = "prometheus.io/scrape"
	PromPortAnnotation   = "prometheus.io/port"
	PromPathAnnotation   = "prometheus.io/path"
	MergeMetricsAnnot    = "prometheus.istio.io/merge-metrics"
	statusPort           = "15020"
	mergedPath           = "/stats/prometheus"
)

// mergeEnabled is Istio's enablePrometheusMerge (mesh config, default true)
// unless the pod says prometheus.istio.io/merge-metrics: "false"; a pod
// that asked not to be scraped (prometheus.io/scrape: "false") is left alone.
func mergeEnabled(pod *corev1.Pod, v Values) bool {
	if v.EnablePrometheusMerge != nil && !*v.EnablePrometheusMerge {
		return false
	}
	if strings.EqualFold(pod.Annotations[MergeMetricsAnnot], "false") {
		return false
	}
	return !strings.EqualFold(pod.Annotations[PromScrapeAnnotation], "false")
}

// applyPrometheusMerge points the pod's scrape annotations at the status
// port's merged endpoint and tells the proxy (metricsmerge.EnvVar) where
// the app's metrics were, as Istio's injector does. A pod already pointed
// at the status port (injected before) is left as it is.
func applyPrometheusMerge(out *corev1.Pod, proxy *corev1.Container, v Values) error {
	if !mergeEnabled(out, v) || out.Annotations[PromPortAnnotation] == statusPort {
		return nil
	}
	app := metricsmerge.Scrape{Scrape: out.Annotations[PromScrapeAnnotation], Path: out.Annotations[PromPathAnnotation], Port: out.Annotations[PromPortAnnotation]}
	if !app.Empty() {
		js, err := json.Marshal(app)
		if err != nil {
			return err
		}
		proxy.Env = append(proxy.Env, corev1.EnvVar{Name: metricsmerge.EnvVar, Value: string(js)})
	}
	out.Annotations[PromScrapeAnnotation] = "true"
	out.Annotations[PromPortAnnotation] = statusPort
	out.Annotations[PromPathAnnotation] = mergedPath
	return nil
}
