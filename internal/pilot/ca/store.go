package ca

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Secret names and keys, as Istio uses them so existing CA material can be
// plugged in unchanged.
const (
	PluggedSecret   = "cacerts"        // a user-supplied CA
	SelfSignedName  = "mesh-ca-secret" // pilot's own root, created on first start
	KeyCACert       = "ca-cert.pem"
	KeyCAKey        = "ca-key.pem"
	KeyCertChain    = "cert-chain.pem"
	KeyRootCert     = "root-cert.pem"
	defaultRootTTL  = 10 * 365 * 24 * time.Hour
	selfSignedOrgan = "mesh.dev"
)

// LoadOrCreate returns the CA of namespace ns: the user's `cacerts` Secret
// when present, else pilot's self-signed root Secret, creating it on first
// use. Concurrent pilots agree on one root: the loser of the create race
// reads the winner's.
func LoadOrCreate(ctx context.Context, kube kubernetes.Interface, ns string, log *slog.Logger) (*Authority, error) {
	secrets := kube.CoreV1().Secrets(ns)
	s, err := secrets.Get(ctx, PluggedSecret, metav1.GetOptions{})
	switch {
	case err == nil:
		a, err := FromPEM(s.Data[KeyCACert], s.Data[KeyCAKey], s.Data[KeyCertChain], s.Data[KeyRootCert])
		if err != nil {
			return nil, fmt.Errorf("secret %s/%s (keys %s, %s, %s, %s): %w", ns, PluggedSecret, KeyCACert, KeyCAKey, KeyCertChain, KeyRootCert, err)
		}
		log.Info("using the plugged-in CA", "secret", ns+"/"+PluggedSecret)
		return a, nil
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read secret %s/%s: %w", ns, PluggedSecret, err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		s, err := secrets.Get(ctx, SelfSignedName, metav1.GetOptions{})
		if err == nil {
			a, err := FromPEM(s.Data[KeyCACert], s.Data[KeyCAKey], nil, nil)
			if err != nil {
				return nil, fmt.Errorf("secret %s/%s: %w (delete it to have pilot create a new root)", ns, SelfSignedName, err)
			}
			return a, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("read secret %s/%s: %w", ns, SelfSignedName, err)
		}
		a, err := NewSelfSigned(selfSignedOrgan, defaultRootTTL)
		if err != nil {
			return nil, err
		}
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: SelfSignedName, Namespace: ns},
			Type:       "istio.io/ca-root",
			Data:       map[string][]byte{KeyCACert: a.CertPEM(), KeyCAKey: a.KeyPEM()},
		}, metav1.CreateOptions{})
		if err == nil {
			log.Info("created a self-signed root CA", "secret", ns+"/"+SelfSignedName)
			return a, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create secret %s/%s: %w", ns, SelfSignedName, err)
		}
	}
	return nil, fmt.Errorf("secret %s/%s: could not create or read it", ns, SelfSignedName)
}
