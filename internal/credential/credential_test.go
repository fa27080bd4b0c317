package credential

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func selfSigned(t testing.TB, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func getter(secrets ...*corev1.Secret) Getter {
	return func(name string) *corev1.Secret {
		for _, s := range secrets {
			if s.Name == name {
				return s
			}
		}
		return nil
	}
}

func secret(name string, typ corev1.SecretType, kv ...any) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "gw"}, Type: typ, Data: map[string][]byte{}}
	for i := 0; i < len(kv); i += 2 {
		s.Data[kv[i].(string)] = kv[i+1].([]byte)
	}
	return s
}

func TestLookup(t *testing.T) {
	cert, key := selfSigned(t, "app.example.com")
	other, otherKey := selfSigned(t, "other.example.com")
	ca, _ := selfSigned(t, "client CA")
	ca2, _ := selfSigned(t, "second CA")
	cases := []struct {
		name    string
		secrets []*corev1.Secret
		cred    string
		needCA  bool
		wantErr string // "" for success
		wantCA  []byte
		from    string
	}{
		{name: "kubernetes.io/tls", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", cert, "tls.key", key)}, cred: "c"},
		{name: "kubernetes:// prefix", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", cert, "tls.key", key)}, cred: "kubernetes://c"},
		{name: "Opaque cert/key", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeOpaque, "cert", cert, "key", key)}, cred: "c"},
		{name: "missing", cred: "c", wantErr: "no Secret gw/c"},
		{name: "no certificate keys", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeOpaque, "foo", cert)}, cred: "c", wantErr: "no certificate: want keys tls.crt and tls.key"},
		{name: "no key", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", cert)}, cred: "c", wantErr: "key tls.key has no private key"},
		{name: "key of another certificate", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", cert, "tls.key", otherKey)}, cred: "c", wantErr: "keys tls.crt and tls.key"},
		{name: "garbage certificate", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", []byte("not pem"), "tls.key", key)}, cred: "c", wantErr: "keys tls.crt and tls.key"},
		{name: "MUTUAL, CA in the Secret", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", cert, "tls.key", key, "ca.crt", ca)}, cred: "c", needCA: true, wantCA: ca, from: "c"},
		{name: "MUTUAL, Opaque cacert", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeOpaque, "cert", cert, "key", key, "cacert", ca)}, cred: "c", needCA: true, wantCA: ca, from: "c"},
		{name: "MUTUAL, NAME-cacert wins", secrets: []*corev1.Secret{
			secret("c", corev1.SecretTypeTLS, "tls.crt", cert, "tls.key", key, "ca.crt", ca),
			secret("c-cacert", corev1.SecretTypeOpaque, "cacert", ca2)}, cred: "c", needCA: true, wantCA: ca2, from: "c-cacert"},
		{name: "MUTUAL, no CA anywhere", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", cert, "tls.key", key)}, cred: "c", needCA: true,
			wantErr: "neither Secret gw/c (key ca.crt or cacert) nor Secret gw/c-cacert holds a CA certificate"},
		{name: "MUTUAL, NAME-cacert without a CA", secrets: []*corev1.Secret{
			secret("c", corev1.SecretTypeTLS, "tls.crt", cert, "tls.key", key), secret("c-cacert", corev1.SecretTypeOpaque, "x", ca)},
			cred: "c", needCA: true, wantErr: "Secret gw/c-cacert: no CA certificate"},
		{name: "MUTUAL, CA not PEM", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", cert, "tls.key", key, "ca.crt", []byte("junk"))},
			cred: "c", needCA: true, wantErr: "key ca.crt: no PEM CERTIFICATE block"},
		{name: "SIMPLE ignores a bad CA", secrets: []*corev1.Secret{secret("c", corev1.SecretTypeTLS, "tls.crt", other, "tls.key", otherKey, "ca.crt", []byte("junk"))}, cred: "c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Lookup(getter(tc.secrets...), "gw", tc.cred, tc.needCA)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Name != "c" || len(c.Cert) == 0 || len(c.Key) == 0 {
				t.Errorf("credential %+v", c)
			}
			if string(c.CA) != string(tc.wantCA) || c.CAFrom != tc.from {
				t.Errorf("CA from %q, want %q", c.CAFrom, tc.from)
			}
		})
	}
}

// FuzzLookup: whatever a Secret holds, Lookup returns a usable credential
// or an error, never a panic, and a credential it returns parses.
func FuzzLookup(f *testing.F) {
	cert, key := selfSigned(f, "app.example.com")
	f.Add(cert, key, cert, true)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), key, []byte{}, false)
	f.Add([]byte{}, []byte{}, []byte("junk"), true)
	f.Fuzz(func(t *testing.T, c, k, ca []byte, needCA bool) {
		s := secret("c", corev1.SecretTypeTLS, "tls.crt", c, "tls.key", k, "ca.crt", ca)
		got, err := Lookup(getter(s), "gw", "c", needCA)
		if err != nil {
			return
		}
		if _, _, err := keyPair(&corev1.Secret{Data: map[string][]byte{"tls.crt": got.Cert, "tls.key": got.Key}}); err != nil {
			t.Fatalf("returned a credential whose pair does not parse: %v", err)
		}
		if needCA && checkCA(got.CA) != nil {
			t.Fatal("returned a CA that does not parse")
		}
	})
}
