package runtime

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// placement decides which node a new pod goes to: a pod whose every image
// has a local binary is bound to the runtime's node; any other pod is left to
// the scheduler and so to kwok's simulated nodes.
func (r *Runtime) placement(pod *corev1.Pod) bool {
	if pod.Spec.NodeName != "" || pod.Spec.HostNetwork {
		return false
	}
	n := 0
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if _, ok := r.binaryFor(c.Image); !ok {
				return false
			}
			n++
		}
	}
	return n > 0
}

func (r *Runtime) serveWebhook(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 4<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, "want an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	var pod corev1.Pod
	if err := json.Unmarshal(review.Request.Object.Raw, &pod); err == nil && r.placement(&pod) {
		patch, _ := json.Marshal([]map[string]any{{"op": "add", "path": "/spec/nodeName", "value": r.node}})
		resp.Patch = patch
		resp.PatchType = ptr.To(admissionv1.PatchTypeJSONPatch)
	}
	review.Response = resp
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&review)
}

// startWebhook serves the placement webhook on 127.0.0.1 and registers it.
func (r *Runtime) startWebhook(ctx context.Context, o Options) error {
	cert, err := tls.X509KeyPair(o.WebhookCertPEM, o.WebhookKeyPEM)
	if err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/place", r.serveWebhook)
	r.webhookSrv = &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 5 * time.Second}
	go r.webhookSrv.ServeTLS(ln, "", "")

	url := fmt.Sprintf("https://%s/place", ln.Addr())
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: r.webhookName()},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "place.sandbox.mesh.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: o.CABundle},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](5),
			// Pilot's injector may add the proxy after this ran; the decision does not change.
			ReinvocationPolicy: ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
	api := r.cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	_ = api.Delete(ctx, cfg.Name, metav1.DeleteOptions{})
	if _, err := api.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register placement webhook: %w", err)
	}
	return r.waitWebhook(ctx)
}

func (r *Runtime) webhookName() string { return "mesh-sandbox-runtime" }

// waitWebhook returns once the apiserver calls the webhook: it learns of new
// configurations through a watch, so the first pods could otherwise miss it.
func (r *Runtime) waitWebhook(ctx context.Context) error {
	var image string
	for name := range r.images {
		image = "sandbox.local/" + name + ":probe"
		break
	}
	if image == "" {
		return nil
	}
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "runtime-webhook-probe-", Namespace: metav1.NamespaceDefault},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: image}}},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := r.cs.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && got.Spec.NodeName == r.node {
			return nil
		}
		if err != nil && !apierrors.IsForbidden(err) && !apierrors.IsServerTimeout(err) && time.Now().After(deadline) {
			return fmt.Errorf("placement webhook: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("placement webhook: the apiserver did not call it within 30 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
