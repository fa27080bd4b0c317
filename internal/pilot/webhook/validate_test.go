package webhook

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/pilot/rollout/annotation"
)

// review posts one AdmissionReview for a VirtualService with annotations
// to /validate and returns the response.
func review(t *testing.T, d annotation.Default, annotations map[string]string) *admissionv1.AdmissionResponse {
	t.Helper()
	vs := map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "reviews", "namespace": "shop", "annotations": annotations},
		"spec":     map[string]any{"hosts": []string{"reviews"}, "http": []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "reviews"}}}}}},
	}
	raw, err := json.Marshal(vs)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "1", Kind: metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
			Name: "reviews", Namespace: "shop", Operation: admissionv1.Update, Object: runtime.RawExtension{Raw: raw}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(func() (inject.Values, error) { return inject.Values{}, nil }, nil, d, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/validate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("decode the response: %v", err)
	}
	return out.Response
}

// The validating webhook refuses rollout annotations pilot would hold the
// change for, naming the annotation, as pilot reads them: under the
// mesh-wide default, which may supply what a resource leaves out.
func TestRolloutAnnotationsValidated(t *testing.T) {
	withInterval := annotation.Default{Interval: "30s"}
	for _, c := range []struct {
		name        string
		def         annotation.Default
		annotations map[string]string
		want        string // "" when allowed
	}{
		{"none", annotation.Default{}, nil, ""},
		{"stages and interval", annotation.Default{}, map[string]string{annotation.Stages: "10,50,100", annotation.Interval: "60s"}, ""},
		{"last stage not 100", annotation.Default{}, map[string]string{annotation.Stages: "10,50", annotation.Interval: "60s"}, "metadata.annotations[rollout.mesh.io/stages]"},
		{"no interval, none by default", annotation.Default{}, map[string]string{annotation.Stages: "10,100"}, "metadata.annotations[rollout.mesh.io/interval]"},
		{"no interval, the default's", withInterval, map[string]string{annotation.Stages: "10,100"}, ""},
		{"a gate without stages", annotation.Default{}, map[string]string{annotation.Max5xxRatio: "0.02"}, "set without rollout.mesh.io/stages"},
		{"a ratio over 1", annotation.Default{}, map[string]string{annotation.Stages: "100", annotation.Max5xxRatio: "2"}, "metadata.annotations[rollout.mesh.io/max-5xx-ratio]"},
		{"a misspelt key", annotation.Default{}, map[string]string{"rollout.mesh.io/stage": "10,100"}, "unknown rollout annotation"},
		{"a promote request", annotation.Default{}, map[string]string{annotation.Stages: "50,100", annotation.Interval: "1h", annotation.Promote: "4/1"}, ""},
		{"a malformed promote request", annotation.Default{}, map[string]string{annotation.Stages: "50,100", annotation.Interval: "1h", annotation.Promote: "four"}, "metadata.annotations[rollout.mesh.io/promote]"},
		{"another domain's key", annotation.Default{}, map[string]string{"example.com/rollout": "x"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := review(t, c.def, c.annotations)
			if c.want == "" {
				if !resp.Allowed {
					t.Errorf("refused: %v", resp.Result)
				}
				return
			}
			if resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, c.want) {
				t.Errorf("allowed=%v %v; want refused naming %q", resp.Allowed, resp.Result, c.want)
			}
		})
	}
}
