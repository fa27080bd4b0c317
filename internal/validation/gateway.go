package validation

import (
	"strings"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

func validateGateway(l *list, o *networking.Gateway) {
	s := &o.Spec
	validateLabels(l, s.Selector, "spec.selector")
	portNames := map[string]int{}
	for i, srv := range s.Servers {
		p := idx("spec.servers", i)
		if srv.Port != nil {
			if srv.Port.Number != 0 {
				validatePort(l, srv.Port.Number, p+".port.number")
			}
			validateProtocol(l, srv.Port.Protocol, p+".port.protocol")
			validatePortName(l, srv.Port.Name, p+".port.name")
			if srv.Port.Name != "" {
				if j, dup := portNames[srv.Port.Name]; dup {
					l.err(p+".port.name", "port name %q is already used by spec.servers[%d]", srv.Port.Name, j)
				}
				portNames[srv.Port.Name] = i
			}
		}
		for j, h := range srv.Hosts {
			hp := idx(p+".hosts", j)
			ns, host := splitNamespaced(h)
			if ns != "" && ns != "." && ns != "*" && ns != "~" {
				for _, msg := range dns1123Label(ns) {
					l.err(hp, "invalid namespace %q in %q: %s", ns, h, msg)
				}
			}
			validateHost(l, host, hp, true)
		}
		proto := ""
		if srv.Port != nil {
			proto = strings.ToUpper(srv.Port.Protocol)
		}
		validateServerTLS(l, srv.Tls, proto, p)
	}
}

func validateServerTLS(l *list, t *v1alpha3.ServerTLSSettings, proto, p string) {
	if t == nil {
		if proto == "HTTPS" {
			l.err(p+".tls", "an HTTPS server needs tls settings")
		}
		return
	}
	if t.HttpsRedirect && proto != "" && proto != "HTTP" {
		l.warn(p+".tls.httpsRedirect", "httpsRedirect only applies to HTTP servers, not %s", proto)
	}
	if proto == "HTTP" && !t.HttpsRedirect {
		l.warn(p+".tls", "TLS settings on an HTTP server are ignored")
	}
	hasCred := t.CredentialName != "" || len(t.CredentialNames) > 0 || len(t.TlsCertificates) > 0 || (t.ServerCertificate != "" && t.PrivateKey != "")
	switch t.Mode {
	case v1alpha3.ServerTLSSettings_SIMPLE, v1alpha3.ServerTLSSettings_MUTUAL, v1alpha3.ServerTLSSettings_OPTIONAL_MUTUAL:
		if !hasCred && !t.HttpsRedirect {
			l.err(p+".tls", "%s mode needs credentialName, or serverCertificate and privateKey", t.Mode)
		}
		if t.Mode != v1alpha3.ServerTLSSettings_SIMPLE && t.CredentialName == "" && t.CaCertificates == "" && t.CaCertCredentialName == "" {
			l.err(p+".tls", "%s mode needs caCertificates or credentialName to verify clients", t.Mode)
		}
	case v1alpha3.ServerTLSSettings_PASSTHROUGH, v1alpha3.ServerTLSSettings_AUTO_PASSTHROUGH:
		if hasCred {
			l.warn(p+".tls", "%s mode does not terminate TLS, so the certificates are not used", t.Mode)
		}
	}
	if t.ServerCertificate != "" && t.PrivateKey == "" {
		l.err(p+".tls.privateKey", "serverCertificate is set but privateKey is not")
	}
	if t.MinProtocolVersion != 0 && t.MaxProtocolVersion != 0 && t.MinProtocolVersion > t.MaxProtocolVersion {
		l.err(p+".tls", "minProtocolVersion %s is above maxProtocolVersion %s", t.MinProtocolVersion, t.MaxProtocolVersion)
	}
}
