// Package credential reads TLS credentials from Kubernetes Secrets the way
// Istio reads a Gateway's (or a DestinationRule's) credentialName, so that
// pilot, which serves them over SDS, and `mesh analyze` and pilot's status
// writer, which report the ones that cannot be served, agree on what a
// Secret holds.
//
// A Secret holds a certificate and key under tls.crt/tls.key (type
// kubernetes.io/tls, as cert-manager writes them) or cert/key (an Opaque
// Secret), and optionally a CA under ca.crt or cacert. A CA for verifying
// clients can also come from the companion Secret NAME-cacert (keys ca.crt
// or cacert), which wins over the CA of the Secret itself, as in Istio.
package credential

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Keys of the two Secret layouts Istio reads.
const (
	TLSCert     = "tls.crt"
	TLSKey      = "tls.key"
	TLSCA       = "ca.crt"
	GenericCert = "cert"
	GenericKey  = "key"
	GenericCA   = "cacert"
	// CASuffix names the companion Secret holding a CA: NAME-cacert.
	CASuffix = "-cacert"
	// SDSPrefix is how SDS resources of Kubernetes Secrets are named
	// (kubernetes://NAME), as Istio names them.
	SDSPrefix = "kubernetes://"
)

// Credential is what one credentialName resolves to: PEM bytes as the
// Secrets hold them, checked to parse.
type Credential struct {
	Name string // the Secret name, without kubernetes://
	Cert []byte // certificate chain; nil when only a CA was asked for
	Key  []byte
	CA   []byte // trust roots for peers; nil when none was asked for or found
	// CAFrom is the Secret the CA came from (NAME or NAME-cacert).
	CAFrom string
}

// Getter returns the Secret called name in the namespace being looked at,
// or nil.
type Getter func(name string) *corev1.Secret

// CrossNamespacePrefix marks a credentialName naming a Secret of another
// namespace, NAMESPACE/NAME, as Istio names the certificateRefs of Gateway
// API listeners. Only Gateways pilot generates from a Gateway API Gateway,
// whose reference a ReferenceGrant allowed, may use it.
const CrossNamespacePrefix = "kubernetes-gateway://"

// CrossNamespaceName is the credentialName of Secret name in namespace ns
// for a generated Gateway.
func CrossNamespaceName(ns, name string) string { return CrossNamespacePrefix + ns + "/" + name }

// SplitCrossNamespace returns the namespace and name of a
// CrossNamespaceName, ok false for any other credentialName.
func SplitCrossNamespace(credentialName string) (ns, name string, ok bool) {
	rest, found := strings.CutPrefix(credentialName, CrossNamespacePrefix)
	if !found {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, "/")
	return ns, name, ok && ns != "" && name != ""
}

// SDSName is the SDS resource a gateway asks for a credentialName by:
// kubernetes://NAME, or the CrossNamespaceName itself.
func SDSName(credentialName string) string {
	if strings.HasPrefix(credentialName, CrossNamespacePrefix) {
		return credentialName
	}
	return SDSPrefix + Name(credentialName)
}

// Name strips the kubernetes:// prefix a credentialName may carry.
func Name(credentialName string) string {
	return strings.TrimPrefix(credentialName, SDSPrefix)
}

// Lookup resolves credentialName in namespace ns. needCA says the
// credential must carry a CA (MUTUAL; OPTIONAL_MUTUAL verifies a client
// certificate only when one is presented, and also needs one). The error
// says which Secret and key are wrong and what to do, for status and
// analyze.
func Lookup(get Getter, ns, credentialName string, needCA bool) (*Credential, error) {
	name := Name(credentialName)
	if name == "" {
		return nil, errors.New("credentialName is empty")
	}
	s := get(name)
	if s == nil {
		return nil, fmt.Errorf("no Secret %s/%s: create it (kubectl create -n %s secret tls %s --cert=... --key=...) in the namespace the gateway runs in", ns, name, ns, name)
	}
	c := &Credential{Name: name}
	var err error
	if c.Cert, c.Key, err = keyPair(s); err != nil {
		return nil, fmt.Errorf("Secret %s/%s: %w", ns, name, err)
	}
	if !needCA {
		return c, nil
	}
	if ca := get(name + CASuffix); ca != nil {
		pemCA, key := caOf(ca)
		if pemCA == nil {
			return nil, fmt.Errorf("Secret %s/%s%s: no CA certificate (key %s or %s)", ns, name, CASuffix, TLSCA, GenericCA)
		}
		if err := checkCA(pemCA); err != nil {
			return nil, fmt.Errorf("Secret %s/%s%s key %s: %w", ns, name, CASuffix, key, err)
		}
		c.CA, c.CAFrom = pemCA, name+CASuffix
		return c, nil
	}
	pemCA, key := caOf(s)
	if pemCA == nil {
		return nil, fmt.Errorf("client certificates cannot be verified: neither Secret %s/%s (key %s or %s) nor Secret %s/%s%s holds a CA certificate", ns, name, TLSCA, GenericCA, ns, name, CASuffix)
	}
	if err := checkCA(pemCA); err != nil {
		return nil, fmt.Errorf("Secret %s/%s key %s: %w", ns, name, key, err)
	}
	c.CA, c.CAFrom = pemCA, name
	return c, nil
}

// keyPair returns the certificate and key of s, checked to belong together.
func keyPair(s *corev1.Secret) (cert, key []byte, err error) {
	certKey, keyKey := TLSCert, TLSKey
	if _, ok := s.Data[TLSCert]; !ok {
		if _, ok := s.Data[GenericCert]; ok {
			certKey, keyKey = GenericCert, GenericKey
		}
	}
	cert, key = s.Data[certKey], s.Data[keyKey]
	switch {
	case len(cert) == 0:
		return nil, nil, fmt.Errorf("no certificate: want keys %s and %s (type kubernetes.io/tls) or %s and %s", TLSCert, TLSKey, GenericCert, GenericKey)
	case len(key) == 0:
		return nil, nil, fmt.Errorf("key %s has a certificate but key %s has no private key", certKey, keyKey)
	}
	if _, err := tls.X509KeyPair(cert, key); err != nil {
		return nil, nil, fmt.Errorf("keys %s and %s: %w", certKey, keyKey, err)
	}
	return cert, key, nil
}

func caOf(s *corev1.Secret) ([]byte, string) {
	for _, k := range []string{TLSCA, GenericCA} {
		if b := s.Data[k]; len(b) > 0 {
			return b, k
		}
	}
	return nil, ""
}

func checkCA(b []byte) error {
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("CA certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM CERTIFICATE block")
	}
	return nil
}

// Served reports whether pilot reads Secrets of this type at all: the two
// types Istio's credentials come in. Others (service account tokens,
// pilot's own CA, docker configs) never reach a gateway.
func Served(s *corev1.Secret) bool {
	return s.Type == corev1.SecretTypeTLS || s.Type == corev1.SecretTypeOpaque || s.Type == ""
}

// LookupClient resolves a DestinationRule's credentialName: the client
// certificate a gateway presents when it originates TLS, with the CA it
// checks the server against when the Secrets hold one (NAME-cacert
// first). No CA anywhere is not an error (the server is then not
// checked, as without caCertificates); a CA that is there but unusable is.
func LookupClient(get Getter, ns, credentialName string) (*Credential, error) {
	c, err := Lookup(get, ns, credentialName, true)
	if err == nil {
		return c, nil
	}
	c, err2 := Lookup(get, ns, credentialName, false)
	if err2 != nil {
		return nil, err2
	}
	name := Name(credentialName)
	for _, sec := range []*corev1.Secret{get(name), get(name + CASuffix)} {
		if sec != nil && (len(sec.Data[TLSCA]) > 0 || len(sec.Data[GenericCA]) > 0) {
			return nil, err
		}
	}
	return c, nil
}

// NamespacesValue is the install value listing the namespaces pilot reads
// Secrets in besides its own and its gateway components' ("*": every
// namespace); NamespacesFlag is the mesh-pilot flag it renders to.
const (
	NamespacesValue = "values.pilot.gatewaySecretNamespaces"
	NamespacesFlag  = "--gateway-secret-namespaces"
	// RoleBindingName is the RoleBinding (a revision's suffix after
	// mesh-pilot aside) pilot keeps in each namespace it follows
	// gateways' Secrets into.
	RoleBindingName = "mesh-pilot-gateway-secrets-auto"
)

// NotReadError is a credential in a namespace whose Secrets pilot does not
// read: it cannot be served, and the fix is an install value, not the
// Secret.
type NotReadError struct {
	Namespace string
	// Where says why that namespace is asked for ("where the gateway
	// runs"); empty when the reference itself names it.
	Where string
	// Pending: pilot has started to read the namespace's Secrets (it
	// follows the gateways' namespaces) and has not listed them yet.
	Pending bool
}

func (e *NotReadError) Error() string {
	where := ""
	if e.Where != "" {
		where = ", " + e.Where
	}
	if e.Pending {
		return fmt.Sprintf("pilot has not read the Secrets of namespace %s%s yet: it reads them since a gateway needs them; if this stays, pilot may not list them (RoleBinding %s there, which pilot makes; the log says why) or add %s to %s",
			e.Namespace, where, RoleBindingName, e.Namespace, NamespacesValue)
	}
	return fmt.Sprintf("pilot does not read Secrets in namespace %s%s: add %s to %s and re-run mesh install (or \"*\" for every namespace; mesh-pilot %s)",
		e.Namespace, where, e.Namespace, NamespacesValue, NamespacesFlag)
}

// CheckNamespaces checks a list of namespaces to read Secrets in, as
// field (the install value or the flag) names it: namespace names, or
// "*" alone for every namespace.
func CheckNamespaces(field string, nss []string) error {
	for i, ns := range nss {
		if ns == "*" {
			if len(nss) > 1 {
				return fmt.Errorf("%s: \"*\" (every namespace) is the whole list: leave the other namespaces out", field)
			}
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("%s[%d] %q: want a namespace name or \"*\" (every namespace): %s", field, i, ns, strings.Join(errs, "; "))
		}
	}
	return nil
}
