package validation

import (
	"strconv"
	"strings"
	"time"

	"istio.io/api/networking/v1alpha3"
	networking "istio.io/client-go/pkg/apis/networking/v1"
)

// MeshGateway is the reserved gateway name for the sidecars of the mesh.
const MeshGateway = "mesh"

func validateVirtualService(l *list, o *networking.VirtualService) {
	s := &o.Spec
	mesh := len(s.Gateways) == 0
	for i, g := range s.Gateways {
		p := idx("spec.gateways", i)
		if g == MeshGateway {
			mesh = true
			continue
		}
		ns, name := splitNamespaced(g)
		if ns != "" {
			for _, msg := range dns1123Label(ns) {
				l.err(p, "invalid gateway namespace %q: %s", ns, msg)
			}
		}
		if name == "" || strings.Contains(name, "/") {
			l.err(p, "invalid gateway reference %q: expected NAME, NAMESPACE/NAME or \"mesh\"", g)
		}
	}
	if len(s.Hosts) == 0 && len(s.Gateways) > 0 {
		l.err("spec.hosts", "a VirtualService bound to gateways needs at least one host")
	}
	for i, h := range s.Hosts {
		p := idx("spec.hosts", i)
		if h == "*" && mesh {
			l.err(p, "the wildcard host \"*\" cannot be used with the mesh gateway; name the services, or bind the VirtualService to a gateway")
			continue
		}
		validateHost(l, h, p, true)
	}
	validateExportTo(l, s.ExportTo, "spec.exportTo")
	if len(s.Http) == 0 && len(s.Tcp) == 0 && len(s.Tls) == 0 {
		l.err("spec", "a VirtualService needs at least one http, tcp or tls route")
	}
	names := map[string]bool{}
	for i, r := range s.Http {
		p := idx("spec.http", i)
		if r.Name != "" {
			if names[r.Name] {
				l.warn(p+".name", "route name %q is used twice", r.Name)
			}
			names[r.Name] = true
		}
		validateHTTPRoute(l, r, p)
	}
	for i, r := range s.Tcp {
		p := idx("spec.tcp", i)
		for j, m := range r.Match {
			if m.Port != 0 {
				validatePort(l, m.Port, idx(p+".match", j)+".port")
			}
		}
		validateRouteDestinations(l, r.Route, p+".route")
	}
	for i, r := range s.Tls {
		p := idx("spec.tls", i)
		for j, m := range r.Match {
			for k, h := range m.SniHosts {
				validateHost(l, h, idx(idx(p+".match", j)+".sniHosts", k), true)
			}
		}
		validateRouteDestinations(l, r.Route, p+".route")
	}
}

func validateHTTPRoute(l *list, r *v1alpha3.HTTPRoute, p string) {
	switch {
	case r.Delegate != nil:
		if len(r.Route) > 0 || r.Redirect != nil || r.DirectResponse != nil {
			l.err(p+".delegate", "a delegating route cannot also have route, redirect or directResponse")
		}
	case len(r.Route) == 0 && r.Redirect == nil && r.DirectResponse == nil:
		l.err(p, "an HTTP route needs one of route, redirect, directResponse or delegate")
	case len(r.Route) > 0 && r.Redirect != nil:
		l.err(p+".redirect", "route and redirect cannot both be set")
	case len(r.Route) > 0 && r.DirectResponse != nil:
		l.err(p+".directResponse", "route and directResponse cannot both be set")
	}
	if r.Redirect != nil && r.Rewrite != nil {
		l.err(p+".rewrite", "rewrite cannot be combined with redirect")
	}
	if r.DirectResponse != nil && (r.DirectResponse.Status < 200 || r.DirectResponse.Status > 599) {
		l.err(p+".directResponse.status", "status %d is not an HTTP status code (200-599)", r.DirectResponse.Status)
	}
	for j, m := range r.Match {
		mp := idx(p+".match", j)
		for name, sm := range map[string]*v1alpha3.StringMatch{"uri": m.Uri, "scheme": m.Scheme, "method": m.Method, "authority": m.Authority} {
			validateStringMatch(l, sm, mp+"."+name)
		}
		for h, sm := range m.Headers {
			validateStringMatch(l, sm, key(mp+".headers", h))
			if strings.ToLower(h) != h {
				l.warn(key(mp+".headers", h), "header names are matched in lower case; write %q", strings.ToLower(h))
			}
		}
		for h, sm := range m.QueryParams {
			validateStringMatch(l, sm, key(mp+".queryParams", h))
		}
		if m.Port != 0 {
			validatePort(l, m.Port, mp+".port")
		}
		validateLabels(l, m.SourceLabels, mp+".sourceLabels")
	}
	var total int64
	for j, d := range r.Route {
		dp := idx(p+".route", j)
		validateDestination(l, d.Destination, dp+".destination")
		if d.Weight < 0 {
			l.err(dp+".weight", "weight %d must not be negative", d.Weight)
		}
		total += int64(d.Weight)
	}
	if len(r.Route) > 1 && total == 0 {
		l.err(p+".route", "the route has several destinations but no weights: set weights that say how to split the traffic")
	}
	if r.Timeout != nil {
		validateDuration(l, r.Timeout, p+".timeout", time.Millisecond)
	}
	if rt := r.Retries; rt != nil {
		if rt.Attempts < 0 {
			l.err(p+".retries.attempts", "attempts %d must not be negative", rt.Attempts)
		}
		validateDuration(l, rt.PerTryTimeout, p+".retries.perTryTimeout", time.Millisecond)
		validateRetryOn(l, rt.RetryOn, p+".retries.retryOn")
		if rt.PerTryTimeout != nil && r.Timeout != nil && rt.PerTryTimeout.AsDuration() > r.Timeout.AsDuration() {
			l.warn(p+".retries.perTryTimeout", "perTryTimeout %s is longer than the route timeout %s, so no retry can happen after a timed-out try", rt.PerTryTimeout.AsDuration(), r.Timeout.AsDuration())
		}
	}
	if f := r.Fault; f != nil {
		if f.Delay == nil && f.Abort == nil {
			l.err(p+".fault", "a fault needs a delay or an abort")
		}
		if d := f.Delay; d != nil {
			if d.Percentage != nil {
				validatePercent(l, d.Percentage.Value, p+".fault.delay.percentage.value")
			}
			if d.GetFixedDelay() == nil && d.GetExponentialDelay() == nil {
				l.err(p+".fault.delay", "a delay needs fixedDelay")
			}
			validateDuration(l, d.GetFixedDelay(), p+".fault.delay.fixedDelay", time.Millisecond)
		}
		if a := f.Abort; a != nil {
			if a.Percentage != nil {
				validatePercent(l, a.Percentage.Value, p+".fault.abort.percentage.value")
			}
			if _, ok := a.ErrorType.(*v1alpha3.HTTPFaultInjection_Abort_HttpStatus); ok {
				if s := a.GetHttpStatus(); s < 200 || s > 599 {
					l.err(p+".fault.abort.httpStatus", "%d is not an HTTP status code (200-599)", s)
				}
			} else if a.ErrorType == nil {
				l.err(p+".fault.abort", "an abort needs httpStatus or grpcStatus")
			}
		}
	}
	if r.Mirror != nil {
		validateDestination(l, r.Mirror, p+".mirror")
	}
	for j, m := range r.Mirrors {
		validateDestination(l, m.Destination, idx(p+".mirrors", j)+".destination")
		if m.Percentage != nil {
			validatePercent(l, m.Percentage.Value, idx(p+".mirrors", j)+".percentage.value")
		}
	}
	if r.MirrorPercentage != nil {
		validatePercent(l, r.MirrorPercentage.Value, p+".mirrorPercentage.value")
	}
}

func validateStringMatch(l *list, sm *v1alpha3.StringMatch, p string) {
	if sm == nil {
		return
	}
	switch m := sm.MatchType.(type) {
	case nil:
		l.err(p, "a string match needs one of exact, prefix or regex")
	case *v1alpha3.StringMatch_Regex:
		validateRegex(l, m.Regex, p+".regex")
	}
}

func validateDestination(l *list, d *v1alpha3.Destination, p string) {
	if d == nil {
		return
	}
	if d.Host != "" {
		validateHost(l, d.Host, p+".host", false)
	}
	if d.Subset != "" {
		for _, msg := range dns1123Label(d.Subset) {
			l.err(p+".subset", "invalid subset name %q: %s", d.Subset, msg)
		}
	}
	if d.Port != nil {
		validatePort(l, d.Port.Number, p+".port.number")
	}
}

func validateRouteDestinations(l *list, rs []*v1alpha3.RouteDestination, p string) {
	var total int64
	for i, d := range rs {
		validateDestination(l, d.Destination, idx(p, i)+".destination")
		if d.Weight < 0 {
			l.err(idx(p, i)+".weight", "weight %d must not be negative", d.Weight)
		}
		total += int64(d.Weight)
	}
	if len(rs) > 1 && total == 0 {
		l.err(p, "the route has several destinations but no weights")
	}
}

// retryPolicies are the retry conditions the proxy understands.
var retryPolicies = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true, "connect-failure": true,
	"envoy-ratelimited": true, "retriable-4xx": true, "refused-stream": true, "retriable-status-codes": true,
	"retriable-headers": true, "http3-post-connect-failure": true, "cancelled": true, "deadline-exceeded": true,
	"internal": true, "resource-exhausted": true, "unavailable": true,
}

func validateRetryOn(l *list, retryOn, p string) {
	if retryOn == "" {
		return
	}
	for _, c := range strings.Split(retryOn, ",") {
		c = strings.TrimSpace(c)
		if retryPolicies[c] {
			continue
		}
		if n, err := strconv.Atoi(c); err == nil && n >= 100 && n <= 599 {
			continue
		}
		l.err(p, "unknown retry condition %q: expected conditions such as 5xx, gateway-error, connect-failure, reset, retriable-4xx, or HTTP status codes", c)
	}
}
