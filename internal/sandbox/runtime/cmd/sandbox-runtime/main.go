// Command sandbox-runtime runs the sandbox runtime against a sandbox started
// with `make sandbox-up`, until interrupted: pods whose images are the mesh's
// own (mesh-pilot, mesh-proxy, mesh-sample) then run for real from bin/.
//
//	go run ./internal/sandbox/runtime/cmd/sandbox-runtime [-dir .sandbox] [-bin bin] [-agent-metrics-address 127.0.0.1:0]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/runtime"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-runtime:", err)
		os.Exit(1)
	}
}

func run() error {
	root, _ := sandbox.RepoRoot()
	dir := flag.String("dir", filepath.Join(root, ".sandbox"), "folder of the running sandbox (make sandbox-up)")
	bin := flag.String("bin", filepath.Join(root, "bin"), "folder holding mesh-pilot, mesh-proxy and mesh-sample (make build)")
	logs := flag.String("logs", "", "folder for the containers' logs (default <dir>/logs/pods)")
	metrics := flag.String("agent-metrics-address", "127.0.0.1:0", "host:port where the fallback node agent serves /metrics (port 0 picks a free one, printed at start; empty: not served)")
	flag.Parse()
	_, kubeconfig, err := sandbox.Running(*dir)
	if err != nil {
		return fmt.Errorf("no sandbox runs in %s (start one with `make sandbox-up`): %w", *dir, err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(*dir, "pki", "ca.crt"))
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := servingCert(filepath.Join(*dir, "pki"), caPEM)
	if err != nil {
		return fmt.Errorf("webhook certificate from the sandbox CA: %w", err)
	}
	images := map[string]string{}
	for _, b := range runtime.Binaries {
		if _, err := os.Stat(filepath.Join(*bin, b)); err == nil {
			images[b] = filepath.Join(*bin, b)
		}
	}
	if *logs == "" {
		*logs = filepath.Join(*dir, "logs", "pods")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rt, err := runtime.Start(ctx, runtime.Options{Config: cfg, Images: images, WebhookCertPEM: certPEM, WebhookKeyPEM: keyPEM,
		CABundle: caPEM, LogDir: *logs, Logger: log, AgentMetricsAddress: *metrics})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "sandbox runtime on node %s, pods in %s, container logs in %s; Ctrl-C stops it\n", rt.NodeName(), rt.PodCIDR(), rt.LogDir())
	if a := rt.AgentMetricsAddr(); a != "" {
		fmt.Fprintf(os.Stderr, "fallback node agent metrics: http://%s/metrics\n", a)
	}
	<-ctx.Done()
	return rt.Stop()
}

// servingCert signs a certificate for 127.0.0.1 with the sandbox's CA, which
// the API server trusts for the placement webhook.
func servingCert(pki string, caPEM []byte) (certPEM, keyPEM []byte, err error) {
	ca, err := tls.LoadX509KeyPair(filepath.Join(pki, "ca.crt"), filepath.Join(pki, "ca.key"))
	if err != nil {
		return nil, nil, err
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "sandbox-runtime"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
