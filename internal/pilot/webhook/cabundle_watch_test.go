package webhook_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/pilot/webhook"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// TestKeepCABundlesFillsANewConfigurationAtOnce: the install applies the
// webhook configurations after pilot is up, so pilot must fill in the
// caBundle when they appear, not at its next resync. The resync here is an
// hour, so only the watch can do it.
func TestKeepCABundlesFillsANewConfigurationAtOnce(t *testing.T) {
	kube, err := kubernetes.NewForConfig(sandboxtest.Cluster(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ca := []byte("-----BEGIN CERTIFICATE-----\nroot of this test\n-----END CERTIFICATE-----\n")
	watched, other := "keep-cabundle-injector", "keep-cabundle-other"
	go webhook.KeepCABundles(ctx, kube, []string{watched}, []string{watched}, func() []byte { return ca }, time.Hour, slog.New(slog.DiscardHandler))

	// Let the first pass (nothing to patch yet) go by, so what follows is
	// the watch's doing.
	time.Sleep(time.Second)
	none, fail := admissionv1.SideEffectClassNone, admissionv1.Fail
	path := "/inject"
	for _, name := range []string{watched, other} {
		m := &admissionv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Webhooks: []admissionv1.MutatingWebhook{{
				Name:                    "sidecar-injector.test.mesh.io",
				ClientConfig:            admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: "mesh-system", Name: "mesh-pilot", Path: &path}},
				SideEffects:             &none,
				FailurePolicy:           &fail,
				AdmissionReviewVersions: []string{"v1"},
				ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}},
			}},
		}
		if _, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, m, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
		v := &admissionv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Webhooks: []admissionv1.ValidatingWebhook{{
				Name:                    "validation.test.mesh.io",
				ClientConfig:            admissionv1.WebhookClientConfig{Service: &admissionv1.ServiceReference{Namespace: "mesh-system", Name: "mesh-pilot", Path: &path}},
				SideEffects:             &none,
				FailurePolicy:           &fail,
				AdmissionReviewVersions: []string{"v1"},
				ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}},
			}},
		}
		if _, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, v, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}

	bundles := func() (mut, val []byte) {
		m, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, watched, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, watched, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle
	}
	for {
		mut, val := bundles()
		if bytes.Equal(mut, ca) && bytes.Equal(val, ca) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("caBundle not filled in within 2 min of the configurations' creation (resync is an hour): mutating %q, validating %q", mut, val)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Someone resetting it (an apply of the chart, say) is undone as fast.
	m, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, watched, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Webhooks[0].ClientConfig.CABundle = nil
	if _, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, m, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		if mut, _ := bundles(); bytes.Equal(mut, ca) {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("a caBundle cleared by another writer was not filled in again within 2 min")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Only the named configurations are pilot's to change.
	o, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, other, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Webhooks[0].ClientConfig.CABundle) != 0 {
		t.Fatalf("a configuration pilot does not own got a caBundle: %q", o.Webhooks[0].ClientConfig.CABundle)
	}
}
