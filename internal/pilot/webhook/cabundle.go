package webhook

import (
	"bytes"
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PatchCABundles writes caPEM into every webhook of the named webhook
// configurations that lacks it, so the API server trusts pilot's serving
// certificate. Configurations that do not exist (yet) are skipped.
func PatchCABundles(ctx context.Context, kube kubernetes.Interface, mutating, validating []string, caPEM []byte) error {
	adm := kube.AdmissionregistrationV1()
	for _, name := range mutating {
		cfg, err := adm.MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read MutatingWebhookConfiguration %s: %w", name, err)
		}
		changed := false
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, caPEM) {
				cfg.Webhooks[i].ClientConfig.CABundle = caPEM
				changed = true
			}
		}
		if changed {
			if _, err := adm.MutatingWebhookConfigurations().Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: %w", name, err)
			}
		}
	}
	for _, name := range validating {
		cfg, err := adm.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read ValidatingWebhookConfiguration %s: %w", name, err)
		}
		changed := false
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, caPEM) {
				cfg.Webhooks[i].ClientConfig.CABundle = caPEM
				changed = true
			}
		}
		if changed {
			if _, err := adm.ValidatingWebhookConfigurations().Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("patch caBundle of ValidatingWebhookConfiguration %s: %w", name, err)
			}
		}
	}
	return nil
}
