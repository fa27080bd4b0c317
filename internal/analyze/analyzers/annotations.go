package analyzers

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"istio.io/api/annotation"
	"k8s.io/apimachinery/pkg/api/resource"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/fallback"
	"mesh.dev/mesh/internal/pilot/inject"
)

// Annotations reports unknown (IST0108), misplaced (IST0107), invalid
// (IST0125) and deprecated (IST0135) annotations in the mesh's and Istio's
// domains.
type Annotations struct{}

// Metadata describes the analyzer.
func (*Annotations) Metadata() analyze.Metadata {
	return analyze.Metadata{Name: "annotations.Known", Description: "Checks mesh and Istio annotations are known, on the right kind of resource and valid",
		Codes: []*analyze.MessageType{analyze.UnknownAnnotation, analyze.MisplacedAnnotation, analyze.InvalidAnnotation, analyze.DeprecatedAnnotation}}
}

// AppRetriesAnnotation declares, on a pod template, how many times the
// application itself retries a failed outbound call (read by MSH0001).
const AppRetriesAnnotation = "mesh.io/app-retries"

type annotationInfo struct {
	kinds      map[string]bool // nil: any kind
	deprecated bool
}

var knownAnnotations = func() map[string]annotationInfo {
	m := map[string]annotationInfo{}
	for _, a := range annotation.AllResourceAnnotations() {
		info := annotationInfo{deprecated: a.Deprecated}
		for _, rt := range a.Resources {
			if rt == annotation.Any {
				info.kinds = nil
				break
			}
			if info.kinds == nil {
				info.kinds = map[string]bool{}
			}
			info.kinds[rt.String()] = true
		}
		m[a.Name] = info
	}
	m[analyze.SuppressAnnotation] = annotationInfo{}
	m[AppRetriesAnnotation] = annotationInfo{kinds: map[string]bool{"Pod": true}}
	m[PodInjectLabel] = annotationInfo{kinds: map[string]bool{"Pod": true}}
	m[PodStatusAnnotation] = annotationInfo{kinds: map[string]bool{"Pod": true}}
	m[fallback.Annotation] = annotationInfo{kinds: map[string]bool{"Pod": true}}
	m[fallback.HangTimeoutAnnotation] = annotationInfo{kinds: map[string]bool{"Pod": true}}
	return m
}()

// ourDomain reports whether an annotation key belongs to the mesh's or
// Istio's domains, which this analyzer knows fully.
func ourDomain(key string) bool {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	return prefix == "istio.io" || strings.HasSuffix(prefix, ".istio.io") || prefix == "mesh.io" || strings.HasSuffix(prefix, ".mesh.io")
}

// Analyze runs the checks.
func (*Annotations) Analyze(ctx *analyze.Context) {
	for _, r := range ctx.Resources {
		if systemNamespaces[r.Namespace] {
			continue
		}
		checkAnnotations(ctx, r, r.Kind, r.Annotations(), "metadata.annotations")
	}
	for _, w := range ctx.Workloads() {
		if w.Template != nil && !systemNamespaces[w.Namespace] {
			checkAnnotations(ctx, w.Resource, "Pod", w.Annotations, templatePath(w.Kind)+".metadata.annotations")
		}
	}
}

func templatePath(kind string) string {
	if kind == "CronJob" {
		return "spec.jobTemplate.spec.template"
	}
	return "spec.template"
}

func checkAnnotations(ctx *analyze.Context, r *analyze.Resource, kind string, ann map[string]string, path string) {
	keys := make([]string, 0, len(ann))
	for k := range ann {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !ourDomain(k) {
			continue
		}
		field := fmt.Sprintf("%s[%q]", path, k)
		info, known := knownAnnotations[k]
		if !known {
			ctx.Report(analyze.UnknownAnnotation, r, field, "Unknown annotation: %s (check its spelling)", k)
			continue
		}
		if info.kinds != nil && !info.kinds[kind] {
			where := make([]string, 0, len(info.kinds))
			for kk := range info.kinds {
				where = append(where, kk)
			}
			sort.Strings(where)
			hint := ""
			if info.kinds["Pod"] && kind != "Pod" && r.Kind != "Pod" {
				hint = " (for a workload, put it on the pod template)"
			}
			ctx.Report(analyze.MisplacedAnnotation, r, field, "Misplaced annotation: %s can only be applied to %s; it has no effect on a %s%s", k, strings.Join(where, ", "), kind, hint)
			continue
		}
		if info.deprecated {
			ctx.Report(analyze.DeprecatedAnnotation, r, field, "Annotation %q has been deprecated and may not work in future Istio versions (nor in this mesh's)", k)
		}
		if check, ok := annotationValues[k]; ok {
			if err := check(ann[k]); err != nil {
				ctx.Report(analyze.InvalidAnnotation, r, field, "Invalid annotation %s: value %q: %v", k, ann[k], err)
			}
		}
	}
}

var codeRE = regexp.MustCompile(`^(IST|MSH)\d{4}$`)

// annotationValues check the values of annotations whose format is fixed.
var annotationValues = map[string]func(string) error{
	"sidecar.istio.io/inject":                               isBool,
	PodInjectLabel:                                          isBool,
	"sidecar.istio.io/rewriteAppHTTPProbers":                isBool,
	"sidecar.istio.io/nativeSidecar":                        isBool,
	"prometheus.istio.io/merge-metrics":                     isBool,
	"istio.io/dry-run":                                      isBool,
	"sidecar.istio.io/interceptionMode":                     oneOf("REDIRECT", "TPROXY", "NONE"),
	"sidecar.istio.io/logLevel":                             oneOf("trace", "debug", "info", "warning", "warn", "error", "critical", "off"),
	"sidecar.istio.io/agentLogLevel":                        nil,
	"traffic.sidecar.istio.io/includeInboundPorts":          portListValue,
	"traffic.sidecar.istio.io/excludeInboundPorts":          portListValue,
	"traffic.sidecar.istio.io/includeOutboundPorts":         portListValue,
	"traffic.sidecar.istio.io/excludeOutboundPorts":         portListValue,
	"readiness.status.sidecar.istio.io/applicationPorts":    portListValue,
	"traffic.sidecar.istio.io/includeOutboundIPRanges":      cidrList,
	"traffic.sidecar.istio.io/excludeOutboundIPRanges":      cidrList,
	"readiness.status.sidecar.istio.io/failureThreshold":    intRange(1, 1<<20),
	"readiness.status.sidecar.istio.io/initialDelaySeconds": intRange(0, 1<<20),
	"readiness.status.sidecar.istio.io/periodSeconds":       intRange(1, 1<<20),
	"status.sidecar.istio.io/port":                          intRange(0, 65535),
	AppRetriesAnnotation:                                    intRange(0, 100),
	fallback.Annotation:                                     oneOf(fallback.ModeDirect, fallback.ModeNone),
	fallback.HangTimeoutAnnotation:                          hangTimeout,
	"sidecar.istio.io/proxyCPU":                             quantity,
	"sidecar.istio.io/proxyCPULimit":                        quantity,
	"sidecar.istio.io/proxyMemory":                          quantity,
	"sidecar.istio.io/proxyMemoryLimit":                     quantity,
	"sidecar.istio.io/statsEvictionInterval":                duration,
	"sidecar.istio.io/statsFlushInterval":                   duration,
	"proxy.istio.io/config":                                 proxyConfig,
	analyze.SuppressAnnotation:                              codeList,
	analyze.IstioSuppressAnnotation:                         codeList,
}

func init() {
	for k, v := range annotationValues {
		if v == nil {
			delete(annotationValues, k)
		}
	}
}

// hangTimeout checks mesh.io/fallback-hang-timeout as the node agent reads it.
func hangTimeout(v string) error {
	if _, err := fallback.ParseHangTimeout(v); err != nil {
		return fmt.Errorf("%w; the pod does not fall back", err)
	}
	return nil
}

func isBool(v string) error {
	if v != "true" && v != "false" {
		return fmt.Errorf("expected \"true\" or \"false\"")
	}
	return nil
}

func oneOf(values ...string) func(string) error {
	return func(v string) error {
		for _, x := range values {
			if v == x {
				return nil
			}
		}
		return fmt.Errorf("expected one of %s", strings.Join(values, ", "))
	}
}

func intRange(lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("expected a whole number from %d to %d", lo, hi)
		}
		return nil
	}
}

func portListValue(v string) error {
	if strings.TrimSpace(v) == "*" || strings.TrimSpace(v) == "" {
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port: expected \"*\" or comma-separated ports (1-65535)", strings.TrimSpace(p))
		}
	}
	return nil
}

func cidrList(v string) error {
	if strings.TrimSpace(v) == "*" || strings.TrimSpace(v) == "" {
		return nil
	}
	for _, c := range strings.Split(v, ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			return fmt.Errorf("%q is not a CIDR block: expected \"*\" or comma-separated CIDRs such as 198.18.0.0/16", strings.TrimSpace(c))
		}
	}
	return nil
}

func quantity(v string) error {
	if _, err := resource.ParseQuantity(v); err != nil {
		return fmt.Errorf("expected a quantity such as 100m or 128Mi")
	}
	return nil
}

func duration(v string) error {
	if _, err := time.ParseDuration(v); err != nil {
		return fmt.Errorf("expected a duration such as 5s")
	}
	return nil
}

// proxyConfig checks proxy.istio.io/config as the injector reads it: a
// value that does not parse refuses the pod.
func proxyConfig(v string) error {
	if _, err := inject.ParseProxyConfig(v); err != nil {
		return fmt.Errorf("%v (the injector refuses the pod)", err)
	}
	return nil
}

func codeList(v string) error {
	for _, c := range strings.Split(v, ",") {
		c = strings.TrimSpace(c)
		if c != "*" && !codeRE.MatchString(c) {
			return fmt.Errorf("%q is not a message code: expected codes such as IST0103,MSH0001, or \"*\"", c)
		}
	}
	return nil
}
