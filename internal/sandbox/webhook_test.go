package sandbox_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

// A validating webhook served by the test process on 127.0.0.1 is called by
// the sandbox's apiserver: the path the mesh's own webhooks take in tests.
func TestAdmissionWebhookOnLoopbackIsCalled(t *testing.T) {
	c := sandboxtest.Cluster(t)
	admin := adminClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	certPEM, keyPEM, err := c.ServingCert("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(denyLabelled)}
	go srv.Serve(l)
	defer srv.Close()

	ns := createNamespace(t, admin, "webhook-")
	url := "https://" + l.Addr().(*net.TCPAddr).String() + "/validate"
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "deny-labelled.sandbox.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: c.CAPEM()},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})

	// The apiserver picks the configuration up from a watch, so the first
	// creates may still pass; wait until the webhook answers.
	var lastErr error
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "denied-", Labels: map[string]string{"deny": "true"}}}
		_, lastErr = admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return lastErr != nil && strings.Contains(lastErr.Error(), "labelled deny"), nil
	})
	if err != nil {
		t.Fatalf("the webhook never denied a labelled ConfigMap; last create error: %v", lastErr)
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "allowed"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("the webhook denied an unlabelled ConfigMap: %v", err)
	}
}

func denyLabelled(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad AdmissionReview", http.StatusBadRequest)
		return
	}
	var cm corev1.ConfigMap
	_ = json.Unmarshal(review.Request.Object.Raw, &cm)
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: cm.Labels["deny"] != "true"}
	if !resp.Allowed {
		resp.Result = &metav1.Status{Message: "labelled deny", Code: http.StatusForbidden}
	}
	review.Response, review.Request = resp, nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}
