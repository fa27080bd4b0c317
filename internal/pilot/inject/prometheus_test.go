package inject

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/proxy/metricsmerge"
)

// TestPrometheusMerge: the scrape annotations point at the status port's
// merged endpoint and the app's own settings reach the proxy, unless the
// mesh, the pod's merge switch or prometheus.io/scrape: "false" say no, or
// the pod points at the status port already.
func TestPrometheusMerge(t *testing.T) {
	merged := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "15020", "prometheus.io/path": "/stats/prometheus"}
	off := false
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		values      func(*Values)
		want        map[string]string // the pod's prometheus.io annotations after
		env         *metricsmerge.Scrape
	}{
		{name: "app metrics", annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9102", "prometheus.io/path": "/m"},
			want: merged, env: &metricsmerge.Scrape{Scrape: "true", Port: "9102", Path: "/m"}},
		{name: "port only", annotations: map[string]string{"prometheus.io/port": "9102"},
			want: merged, env: &metricsmerge.Scrape{Port: "9102"}},
		{name: "no annotations: the proxy's metrics are scraped", want: merged},
		{name: "scrape false", annotations: map[string]string{"prometheus.io/scrape": "false", "prometheus.io/port": "9102"},
			want: map[string]string{"prometheus.io/scrape": "false", "prometheus.io/port": "9102"}},
		{name: "pod opts out", annotations: map[string]string{"prometheus.istio.io/merge-metrics": "false", "prometheus.io/port": "9102"},
			want: map[string]string{"prometheus.io/port": "9102"}},
		{name: "mesh turns it off", annotations: map[string]string{"prometheus.io/port": "9102"}, values: func(v *Values) { v.EnablePrometheusMerge = &off },
			want: map[string]string{"prometheus.io/port": "9102"}},
		{name: "already the status port", annotations: map[string]string{"prometheus.io/port": "15020", "prometheus.io/path": "/custom"},
			want: map[string]string{"prometheus.io/port": "15020", "prometheus.io/path": "/custom"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testValues
			if tc.values != nil {
				tc.values(&v)
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Annotations: tc.annotations},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}}
			out, err := Pod(pod, v)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, k := range []string{PromScrapeAnnotation, PromPortAnnotation, PromPathAnnotation} {
				if a, ok := out.Annotations[k]; ok {
					got[k] = a
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("annotations %v, want %v", got, tc.want)
			}
			var env *metricsmerge.Scrape
			for _, e := range out.Spec.Containers[0].Env {
				if e.Name == metricsmerge.EnvVar {
					if env, err = metricsmerge.Parse(e.Value); err != nil {
						t.Fatalf("the proxy refuses what the injector wrote: %v", err)
					}
				}
			}
			if !reflect.DeepEqual(env, tc.env) {
				t.Errorf("%s = %+v, want %+v", metricsmerge.EnvVar, env, tc.env)
			}
		})
	}
}
