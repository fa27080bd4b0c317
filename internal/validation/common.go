package validation

import (
	"net/netip"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	istiotype "istio.io/api/type/v1beta1"
)

// validateHost checks a host name as used in hosts fields: a DNS name, a
// short name, or a name whose first label is "*" (or "*" alone).
func validateHost(l *list, h, path string, allowWildcard bool) {
	if h == "" {
		l.err(path, "host must not be empty")
		return
	}
	if h == "*" {
		if !allowWildcard {
			l.err(path, "wildcard host \"*\" is not allowed here")
		}
		return
	}
	name := h
	if strings.HasPrefix(h, "*.") {
		if !allowWildcard {
			l.err(path, "wildcard host %q is not allowed here", h)
			return
		}
		name = h[2:]
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return
	}
	if _, err := netip.ParsePrefix(name); err == nil {
		return
	}
	if len(name) > 255 {
		l.err(path, "host %q is longer than 255 characters", h)
		return
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if msgs := dns1123Label(strings.ToLower(label)); len(msgs) > 0 {
			l.err(path, "invalid host %q: label %q: %s", h, label, msgs[0])
			return
		}
	}
}

func validatePort(l *list, p uint32, path string) {
	if p == 0 || p > 65535 {
		l.err(path, "port %d is out of range: expected 1-65535", p)
	}
}

func validateDuration(l *list, d *durationpb.Duration, path string, min time.Duration) {
	if d == nil {
		return
	}
	if got := d.AsDuration(); got < min {
		l.err(path, "duration %s is too short: must be at least %s", got, min)
	}
}

func validatePercent(l *list, v float64, path string) {
	if v < 0 || v > 100 {
		l.err(path, "percentage %v is out of range: expected 0-100", v)
	}
}

func validateExportTo(l *list, exportTo []string, path string) {
	seen := map[string]bool{}
	for i, e := range exportTo {
		p := idx(path, i)
		if seen[e] {
			l.err(p, "duplicate entry %q", e)
		}
		seen[e] = true
		switch e {
		case ".", "*":
			continue
		case "~":
			if len(exportTo) > 1 {
				l.err(p, "\"~\" (export nowhere) cannot be combined with other entries")
			}
			continue
		}
		for _, msg := range dns1123Label(e) {
			l.err(p, "invalid namespace %q: %s (or use \".\" for this namespace, \"*\" for all)", e, msg)
		}
	}
	if seen["*"] && len(exportTo) > 1 {
		l.warn(path, "\"*\" already exports to every namespace; the other entries have no effect")
	}
}

func validateSelector(l *list, s *istiotype.WorkloadSelector, path string) {
	if s == nil {
		return
	}
	validateSelectorLabels(l, s.MatchLabels, path+".matchLabels")
}

func validateSelectorLabels(l *list, labels map[string]string, path string) {
	if len(labels) == 0 {
		l.warn(path, "an empty selector selects every workload in the namespace; omit the selector to say so")
	}
	validateLabels(l, labels, path)
}

func validateRegex(l *list, re, path string) {
	if _, err := regexp.Compile(re); err != nil {
		l.err(path, "invalid regular expression %q: %v", re, err)
	}
}

// knownProtocols are the protocols a port may name; matching is case-insensitive.
var knownProtocols = map[string]bool{
	"HTTP": true, "HTTPS": true, "HTTP2": true, "GRPC": true, "GRPC-WEB": true, "TCP": true,
	"TLS": true, "MONGO": true, "MYSQL": true, "REDIS": true, "UDP": true, "HBONE": true,
	"THRIFT": true, // mesh's: routed per request by MetaRoutes (docs/protocols.md)
}

func validateProtocol(l *list, proto, path string) {
	if proto == "" {
		return
	}
	if !knownProtocols[strings.ToUpper(proto)] {
		l.err(path, "unknown protocol %q: expected one of HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, THRIFT, MONGO, MYSQL, REDIS, UDP", proto)
	}
}

func validatePortName(l *list, name, path string) {
	if name == "" {
		return
	}
	for _, msg := range dns1123Label(name) {
		l.err(path, "invalid port name %q: %s", name, msg)
	}
}

// splitNamespaced splits "ns/name" into its parts; ns is "" when absent.
func splitNamespaced(s string) (ns, name string) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}
