// Package webhook serves pilot's admission webhooks on 15017: /inject adds
// the proxy to pods, /validate rejects malformed Istio resources naming the
// field at fault. It also keeps the webhook configurations' caBundle current.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"mesh.dev/mesh/internal/fallback"
	"mesh.dev/mesh/internal/pilot/inject"
	"mesh.dev/mesh/internal/pilot/rollout/annotation"
	"mesh.dev/mesh/internal/validation"
)

// maxBody bounds an AdmissionReview; the API server sends at most a few MiB.
const maxBody = 8 << 20

// NamespaceLabels returns the labels of a namespace (the injector reads its
// mesh.io/fallback label).
type NamespaceLabels func(ctx context.Context, name string) (map[string]string, error)

// Handler serves /inject and /validate. values returns the injector values
// current at request time (the ConfigMap may change); nsLabels the labels
// of the pod's namespace (nil: none are read); rollout is the mesh-wide
// default of the rollout annotations pilot reads resources with.
func Handler(values func() (inject.Values, error), nsLabels NamespaceLabels, rollout annotation.Default, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /inject", func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, log, func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
			return injectPod(r.Context(), req, values, nsLabels, log)
		})
	})
	mux.HandleFunc("POST /validate", func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, log, func(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
			return validate(req, rollout)
		})
	})
	return mux
}

func serve(w http.ResponseWriter, r *http.Request, log *slog.Logger, review func(*admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil || ar.Request == nil {
		http.Error(w, fmt.Sprintf("body is not an admission.k8s.io/v1 AdmissionReview with a request: %v", err), http.StatusBadRequest)
		return
	}
	resp := review(ar.Request)
	resp.UID = ar.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: ar.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		log.Warn("write admission response", "err", err)
	}
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Status: metav1.StatusFailure, Code: code, Message: msg, Reason: metav1.StatusReasonInvalid}}
}

func injectPod(ctx context.Context, req *admissionv1.AdmissionRequest, values func() (inject.Values, error), nsLabels NamespaceLabels, log *slog.Logger) *admissionv1.AdmissionResponse {
	if req.Kind.Kind != "Pod" {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(400, "decode pod: "+err.Error())
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	if why := inject.Skip(&pod); why != "" {
		log.Debug("not injecting", "pod", pod.Namespace+"/"+pod.GenerateName+pod.Name, "reason", why)
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	v, err := values()
	if err != nil {
		return deny(500, "injector values: "+err.Error())
	}
	var notes []string
	if nsLabels != nil {
		l, err := nsLabels(ctx, pod.Namespace)
		if err != nil {
			// Fails closed: the namespace may have opted out of fallback.
			l = map[string]string{fallback.Annotation: fallback.ModeNone}
			notes = append(notes, fmt.Sprintf("namespace %s not read (%v): its %s label is taken as %q", pod.Namespace, err, fallback.Annotation, fallback.ModeNone))
		}
		v.NamespaceLabels = l
	}
	injected, err := inject.Pod(&pod, v)
	if err != nil {
		return deny(500, "inject: "+err.Error())
	}
	raw, err := json.Marshal(injected)
	if err != nil {
		return deny(500, err.Error())
	}
	resp := admission.PatchResponseFromRaw(req.Object.Raw, raw)
	if err := resp.Complete(admission.Request{AdmissionRequest: *req}); err != nil {
		return deny(500, "build patch: "+err.Error())
	}
	resp.Warnings = append(notes, inject.Warnings(&pod, v)...)
	log.Info("injected proxy", "pod", pod.Namespace+"/"+pod.GenerateName+pod.Name)
	return &resp.AdmissionResponse
}

func validate(req *admissionv1.AdmissionRequest, rollout annotation.Default) *admissionv1.AdmissionResponse {
	if !validation.IsIstioGroup(req.Kind.Group) || req.Operation == admissionv1.Delete {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	errs, warns, err := validation.ValidateJSON(req.Object.Raw)
	if err != nil {
		// Kinds pilot does not know (e.g. a newer Istio API) are let through.
		return &admissionv1.AdmissionResponse{Allowed: true, Warnings: []string{"not validated: " + err.Error()}}
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	msgs = append(msgs, rolloutErrors(req.Object.Raw, rollout)...)
	resp := &admissionv1.AdmissionResponse{Allowed: len(msgs) == 0}
	for _, w := range warns {
		resp.Warnings = append(resp.Warnings, w.Error())
	}
	if len(msgs) > 0 {
		name := req.Name
		if name == "" {
			name = req.Namespace + "/<generated>"
		}
		resp.Result = &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    400,
			Reason:  metav1.StatusReasonInvalid,
			Message: fmt.Sprintf("%s %s is invalid: %s", req.Kind.Kind, name, strings.Join(msgs, "; ")),
		}
	}
	return resp
}

// rolloutErrors reads a resource's rollout.mesh.io/ annotations as pilot
// will, under the mesh-wide default: pilot holds a change whose
// annotations it cannot carry out (so a typo never releases it to every
// proxy at once), and refusing it here says so to whoever applies it,
// instead of only in the resource's status afterwards.
func rolloutErrors(raw []byte, d annotation.Default) []string {
	var obj struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if json.Unmarshal(raw, &obj) != nil {
		return nil // ValidateJSON decoded it; nothing else to say
	}
	var out []string
	field := func(err error) {
		var ae *annotation.Error
		if errors.As(err, &ae) {
			out = append(out, fmt.Sprintf("metadata.annotations[%s]: %q: %s", ae.Annotation, ae.Value, ae.Problem))
		} else if err != nil {
			out = append(out, err.Error())
		}
	}
	_, err := annotation.Parse(d.Under(obj.Metadata.Annotations))
	field(err)
	_, _, err = annotation.ParseRequests(obj.Metadata.Annotations)
	field(err)
	return out
}
