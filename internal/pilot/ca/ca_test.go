package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	securityapi "istio.io/api/security/v1alpha1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

func csrFor(t *testing.T, uris ...string) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		p, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), key
}

func TestWorkloadCertificatesChainToTheRoot(t *testing.T) {
	a, err := NewSelfSigned("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, err := a.SignWorkload(key.Public(), SPIFFEID("default", "reviews"), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(chain)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: a.RootPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("workload cert does not verify against the root: %v", err)
	}
	if len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/reviews" {
		t.Errorf("URI SANs %v", cert.URIs)
	}
	if life := cert.NotAfter.Sub(time.Now()); life > 11*time.Minute {
		t.Errorf("certificate lives %v, asked for 10m", life)
	}
	if _, err := a.SignWorkload(key.Public(), "https://not-spiffe", time.Minute); err == nil {
		t.Error("a non-SPIFFE identity was signed")
	}
}

func TestSecretCacheRotatesAtHalfLife(t *testing.T) {
	a, _ := NewSelfSigned("test", time.Hour)
	now := time.Now()
	c := &SecretCache{CA: a, TTL: 10 * time.Minute, now: func() time.Time { return now }}
	first, err := c.WorkloadSecrets("default", "reviews")
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].Name != "default" || first[1].Name != "ROOTCA" {
		t.Fatalf("secrets %v", first)
	}
	again, _ := c.WorkloadSecrets("default", "reviews")
	if again[0] != first[0] || c.DueForRotation() {
		t.Error("certificate reissued before half its life")
	}
	now = now.Add(6 * time.Minute)
	if !c.DueForRotation() {
		t.Error("not due for rotation past half-life")
	}
	rotated, _ := c.WorkloadSecrets("default", "reviews")
	if rotated[0] == first[0] {
		t.Error("certificate not reissued past half-life")
	}
}

func TestFromPEMRejectsLeafCertificates(t *testing.T) {
	a, _ := NewSelfSigned("test", time.Hour)
	_, chain, keyPEM, err := a.NewKeyPair(func(pub crypto.PublicKey) ([]byte, error) {
		return a.SignServing(pub, []string{"x.example"}, time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromPEM(chain, keyPEM, nil, nil); err == nil || !strings.Contains(err.Error(), "CA:TRUE") {
		t.Errorf("a leaf certificate was accepted as CA: %v", err)
	}
}

// Sandbox: the CA Secret, root publication and the token-authenticated CSR service.

func TestCAOnTheAPIServer(t *testing.T) {
	c := sandboxtest.Cluster(t)
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ns := range []string{"mesh-system", "team-a", "team-b"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	a, err := LoadOrCreate(ctx, kube, "mesh-system", log)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreate(ctx, kube, "mesh-system", log)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.RootPEM()) != string(a.RootPEM()) {
		t.Fatal("a second start made a different root; restarts would break every workload")
	}

	pubCtx, stopPub := context.WithCancel(ctx)
	defer stopPub()
	go func() { _ = (&Publisher{Kube: kube, RootPEM: a.RootPEM(), Log: log}).Run(pubCtx) }()
	waitRoot := func(ns string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
			cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, RootConfigMap, metav1.GetOptions{})
			return err == nil && cm.Data[KeyRootCert] == string(a.RootPEM()), nil
		})
		if err != nil {
			t.Fatalf("root ConfigMap never appeared (or was not restored) in %s: %v", ns, err)
		}
	}
	waitRoot("team-a")
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-c"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoot("team-c")
	if err := kube.CoreV1().ConfigMaps("team-a").Delete(ctx, RootConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoot("team-a")

	// The CSR service on loopback.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	(&Service{CA: a, Kube: kube, MaxTTL: time.Hour, Log: log, Audiences: []string{"istio-ca"}}).Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := securityapi.NewIstioCertificateServiceClient(conn)

	token := func(ns, sa string) string {
		t.Helper()
		if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for %s/%s: %v", ns, sa, err)
		}
		return tr.Status.Token
	}
	call := func(tok, csr string) (*securityapi.IstioCertificateResponse, error) {
		cctx := ctx
		if tok != "" {
			cctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		return client.CreateCertificate(cctx, &securityapi.IstioCertificateRequest{Csr: csr, ValidityDuration: 600})
	}
	tokA := token("team-a", "frontend")
	tokB := token("team-b", "billing")

	csr, _ := csrFor(t, SPIFFEID("team-a", "frontend"))
	resp, err := call(tokA, csr)
	if err != nil {
		t.Fatalf("own identity refused: %v", err)
	}
	b, _ := pem.Decode([]byte(resp.CertChain[0]))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.URIs[0].String() != "spiffe://cluster.local/ns/team-a/sa/frontend" {
		t.Errorf("issued for %v", leaf.URIs)
	}
	if resp.CertChain[len(resp.CertChain)-1] != string(a.RootPEM()) {
		t.Error("the chain does not end with the root")
	}

	// A token from team-b asking for team-a's identity gets nothing.
	if _, err := call(tokB, csr); status.Code(err) != codes.PermissionDenied {
		t.Errorf("team-b token for a team-a identity: %v, want PermissionDenied", err)
	}
	if _, err := call("", csr); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	if _, err := call("not-a-token", csr); status.Code(err) != codes.Unauthenticated {
		t.Errorf("forged token: %v, want Unauthenticated", err)
	}
	// The injector's projected token is meant for the CA ("istio-ca"); one
	// meant for some other service is refused.
	audienceToken := func(aud string) string {
		t.Helper()
		tr, err := kube.CoreV1().ServiceAccounts("team-a").CreateToken(ctx, "frontend",
			&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{aud}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for audience %s: %v", aud, err)
		}
		return tr.Status.Token
	}
	if _, err := call(audienceToken("istio-ca"), csr); err != nil {
		t.Errorf("token for the istio-ca audience refused: %v", err)
	}
	if _, err := call(audienceToken("vault"), csr); status.Code(err) != codes.Unauthenticated {
		t.Errorf("token for another audience: %v, want Unauthenticated", err)
	}
	// A CSR without SANs gets the caller's identity, whatever it is.
	bare, _ := csrFor(t)
	resp, err = call(tokB, bare)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = pem.Decode([]byte(resp.CertChain[0]))
	leaf, _ = x509.ParseCertificate(b.Bytes)
	if leaf.URIs[0].String() != "spiffe://cluster.local/ns/team-b/sa/billing" {
		t.Errorf("bare CSR issued for %v", leaf.URIs)
	}
}
