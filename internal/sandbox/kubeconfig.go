package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// contextName is the kubeconfig context (and cluster) name of every sandbox.
const contextName = "mesh-sandbox"

// writeKubeconfig writes a kubeconfig for one client certificate with every
// credential embedded, so the file works when copied elsewhere.
func writeKubeconfig(path, server string, caPEM []byte, user string, kp keyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[contextName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	cfg.Contexts[contextName] = &clientcmdapi.Context{Cluster: contextName, AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = contextName
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// restConfig is a client configuration for one client certificate. The rate
// limits are raised because tests create objects in bursts and the default
// 5 QPS would make them wait on the client, not on the server.
func restConfig(server string, caPEM []byte, kp keyPair) *rest.Config {
	return &rest.Config{
		Host: server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   caPEM,
			CertData: kp.CertPEM,
			KeyData:  kp.KeyPEM,
		},
		QPS:   200,
		Burst: 400,
	}
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// UserKubeconfig writes a kubeconfig for a user that is authenticated by a
// client certificate from the sandbox CA (common name user, organizations
// groups) and has no RBAC bindings beyond what the groups already carry; a
// test grants what it needs. It returns the file's path.
func (c *Cluster) UserKubeconfig(user string, groups ...string) (string, error) {
	if user == "" {
		return "", fmt.Errorf("sandbox: UserKubeconfig needs a user name")
	}
	kp, err := c.ca.client(user, groups...)
	if err != nil {
		return "", err
	}
	path := filepath.Join(layout{c.dir}.users(), safeName.ReplaceAllString(user, "_")+".kubeconfig")
	if err := writeKubeconfig(path, c.server, c.ca.certPEM, user, kp); err != nil {
		return "", err
	}
	return path, nil
}

// UserRESTConfig is UserKubeconfig as a client configuration, for tests that
// need no file.
func (c *Cluster) UserRESTConfig(user string, groups ...string) (*rest.Config, error) {
	kp, err := c.ca.client(user, groups...)
	if err != nil {
		return nil, err
	}
	return restConfig(c.server, c.ca.certPEM, kp), nil
}

// ServingCert issues a TLS server certificate from the sandbox CA for the given
// DNS names and IPs, for test servers the apiserver calls (admission webhooks
// on 127.0.0.1, for example); CAPEM is the bundle that trusts it.
func (c *Cluster) ServingCert(hosts ...string) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, fmt.Errorf("sandbox: ServingCert needs at least one DNS name or IP")
	}
	kp, err := c.ca.serving(hosts[0], hosts...)
	if err != nil {
		return nil, nil, err
	}
	return kp.CertPEM, kp.KeyPEM, nil
}

// CAPEM returns the sandbox CA certificate, which every sandbox certificate chains to.
func (c *Cluster) CAPEM() []byte { return append([]byte(nil), c.ca.certPEM...) }
