package validation

import (
	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	"time"
)

func validateDestinationRule(l *list, o *networking.DestinationRule) {
	s := &o.Spec
	if s.Host != "" {
		validateHost(l, s.Host, "spec.host", true)
	}
	validateExportTo(l, s.ExportTo, "spec.exportTo")
	validateSelector(l, s.WorkloadSelector, "spec.workloadSelector")
	validateTrafficPolicy(l, s.TrafficPolicy, "spec.trafficPolicy")
	seen := map[string]bool{}
	for i, ss := range s.Subsets {
		p := idx("spec.subsets", i)
		if ss.Name != "" {
			if seen[ss.Name] {
				l.err(p+".name", "subset %q is defined twice", ss.Name)
			}
			seen[ss.Name] = true
			for _, msg := range dns1123Label(ss.Name) {
				l.err(p+".name", "invalid subset name %q: %s", ss.Name, msg)
			}
		}
		validateLabels(l, ss.Labels, p+".labels")
		validateTrafficPolicy(l, ss.TrafficPolicy, p+".trafficPolicy")
	}
}

func validateTrafficPolicy(l *list, tp *v1alpha3.TrafficPolicy, p string) {
	if tp == nil {
		return
	}
	validateConnectionPool(l, tp.ConnectionPool, p+".connectionPool")
	validateOutlier(l, tp.OutlierDetection, p+".outlierDetection")
	validateClientTLS(l, tp.Tls, p+".tls")
	seen := map[uint32]bool{}
	for i, pl := range tp.PortLevelSettings {
		pp := idx(p+".portLevelSettings", i)
		if pl.Port == nil || pl.Port.Number == 0 {
			l.err(pp+".port", "port-level settings need port.number")
			continue
		}
		validatePort(l, pl.Port.Number, pp+".port.number")
		if seen[pl.Port.Number] {
			l.err(pp+".port.number", "port %d has settings twice", pl.Port.Number)
		}
		seen[pl.Port.Number] = true
		validateConnectionPool(l, pl.ConnectionPool, pp+".connectionPool")
		validateOutlier(l, pl.OutlierDetection, pp+".outlierDetection")
		validateClientTLS(l, pl.Tls, pp+".tls")
	}
}

func validateConnectionPool(l *list, cp *v1alpha3.ConnectionPoolSettings, p string) {
	if cp == nil {
		return
	}
	if t := cp.Tcp; t != nil {
		if t.MaxConnections < 0 {
			l.err(p+".tcp.maxConnections", "must not be negative")
		}
		validateDuration(l, t.ConnectTimeout, p+".tcp.connectTimeout", time.Millisecond)
	}
	if h := cp.Http; h != nil {
		for name, v := range map[string]int32{"http1MaxPendingRequests": h.Http1MaxPendingRequests, "http2MaxRequests": h.Http2MaxRequests, "maxRequestsPerConnection": h.MaxRequestsPerConnection, "maxRetries": h.MaxRetries} {
			if v < 0 {
				l.err(p+".http."+name, "must not be negative")
			}
		}
		validateDuration(l, h.IdleTimeout, p+".http.idleTimeout", time.Millisecond)
	}
}

func validateOutlier(l *list, od *v1alpha3.OutlierDetection, p string) {
	if od == nil {
		return
	}
	if od.MaxEjectionPercent < 0 || od.MaxEjectionPercent > 100 {
		l.err(p+".maxEjectionPercent", "%d is out of range 0-100", od.MaxEjectionPercent)
	}
	if od.MinHealthPercent < 0 || od.MinHealthPercent > 100 {
		l.err(p+".minHealthPercent", "%d is out of range 0-100", od.MinHealthPercent)
	}
	validateDuration(l, od.Interval, p+".interval", time.Millisecond)
	validateDuration(l, od.BaseEjectionTime, p+".baseEjectionTime", time.Millisecond)
}

func validateClientTLS(l *list, t *v1alpha3.ClientTLSSettings, p string) {
	if t == nil {
		return
	}
	switch t.Mode {
	case v1alpha3.ClientTLSSettings_MUTUAL:
		if t.CredentialName == "" && (t.ClientCertificate == "" || t.PrivateKey == "") {
			l.err(p, "MUTUAL mode needs credentialName, or clientCertificate and privateKey")
		}
	case v1alpha3.ClientTLSSettings_ISTIO_MUTUAL:
		if t.ClientCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" || t.CredentialName != "" {
			l.err(p, "ISTIO_MUTUAL uses the mesh's certificates: clientCertificate, privateKey, caCertificates and credentialName must be empty")
		}
	case v1alpha3.ClientTLSSettings_DISABLE:
		if t.ClientCertificate != "" || t.CredentialName != "" {
			l.warn(p, "TLS is disabled, so the certificate settings have no effect")
		}
	}
	if t.InsecureSkipVerify.GetValue() {
		l.warn(p+".insecureSkipVerify", "the server's certificate is not verified")
	}
}
