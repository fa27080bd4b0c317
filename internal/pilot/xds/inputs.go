package xds

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"

	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/telemetry"
)

// workload is everything the generator reads about a proxy. Generate builds
// it once (workloadFor) and generation sees the proxy only through it, so
// the key under which proxies share generated config can be derived from
// it: each field enters the key through its row of inputKeys, and
// TestEveryProxyInputIsKeyed fails for a field without one.
type workload struct {
	proxyType      model.ProxyType
	namespace      string
	labels         map[string]string
	serviceAccount string
	namedPorts     map[string]uint32
	services       []*model.Service
	meta           model.NodeMetadata
}

// inputKey is how one field of workload enters the sharing key: key writes
// what of it the generator reads, or why says why nothing need be written.
type inputKey struct {
	field string
	key   func(pc *PushContext, w *workload, b *keyBuilder)
	why   string
}

// inputKeys is in key order; the type goes first since the rest depends on it.
var inputKeys = []inputKey{
	{field: "proxyType", key: func(_ *PushContext, w *workload, b *keyBuilder) {
		b.WriteString(string(w.proxyType))
	}},
	{field: "namespace", key: func(_ *PushContext, w *workload, b *keyBuilder) {
		b.WriteString("|" + w.namespace)
	}},
	{field: "labels", key: labelsKey},
	{field: "namedPorts", key: func(_ *PushContext, w *workload, b *keyBuilder) {
		names := make([]string, 0, len(w.namedPorts))
		for n := range w.namedPorts {
			names = append(names, n)
		}
		sort.Strings(names)
		b.WriteString("|ports:")
		for _, n := range names {
			fmt.Fprintf(b, "%s=%d,", n, w.namedPorts[n])
		}
	}},
	{field: "services", why: "chosen by namespace and labels from the push's own snapshot (ServicesFor), both keyed"},
	{field: "serviceAccount", why: "read after sharing, for the proxy's own secrets and Resources.ServiceAccount"},
	{field: "meta", key: func(_ *PushContext, w *workload, b *keyBuilder) {
		m, _ := json.Marshal(w.meta) // plain strings and numbers: cannot fail
		b.WriteString("|meta:")
		b.Write(m)
	}},
}

// labelsKey writes what labels decide. A router selects Gateways by them.
// A sidecar's labels pick its Sidecar scope, its mTLS mode per inbound
// port, its authorization and request authentication policies, and, when a
// rule matches on source labels, the labels themselves; and the Telemetry
// (access logs) that applies to it: two sidecars whose
// labels decide the same share config.
func labelsKey(pc *PushContext, w *workload, b *keyBuilder) {
	if w.proxyType == model.Router {
		b.WriteString("|" + labelKey(w.labels))
		return
	}
	sc := pc.scopeOf(w.namespace, w.labels, w.meta.DNSAutoAllocate)
	b.WriteString("|scope:" + sc.key)
	for _, ip := range inboundPorts(w.services, w.namedPorts) {
		fmt.Fprintf(b, "|%d/%s/%d", ip.port, ip.protocol, pc.mtlsMode(w.namespace, w.labels, ip.port))
		// The inbound cluster names the services it serves (for the
		// destination side's metrics); nothing else reads their hosts.
		if !b.noServiceHosts {
			for _, svc := range ip.services {
				b.WriteString("/" + svc.Hostname)
			}
		}
	}
	// The passthrough chains follow the workload's default mode and its
	// portLevelMtls ports.
	fmt.Fprintf(b, "|*/%d", pc.mtlsMode(w.namespace, w.labels, 0))
	for _, port := range pc.portLevelPorts(w.namespace, w.labels) {
		fmt.Fprintf(b, "|pl%d/%d", port, pc.mtlsMode(w.namespace, w.labels, port))
	}
	as := pc.authzPolicies(w.namespace, w.labels)
	for _, ap := range as.allow {
		b.WriteString("|a:" + ap.Namespace + "/" + ap.Name)
	}
	for _, ap := range as.custom {
		b.WriteString("|c:" + ap.Namespace + "/" + ap.Name)
	}
	for _, ap := range as.deny {
		b.WriteString("|d:" + ap.Namespace + "/" + ap.Name)
	}
	for _, ap := range as.audit {
		b.WriteString("|u:" + ap.Namespace + "/" + ap.Name)
	}
	for _, ra := range pc.requestAuthns(w.namespace, w.labels) {
		b.WriteString("|r:" + ra.Namespace + "/" + ra.Name)
	}
	if pc.sourceLabels {
		b.WriteString("|l:" + labelKey(w.labels))
	}
	// Telemetry selects by labels too (a router's labels are keyed whole).
	b.WriteString(pc.telemetryKey(w, telemetry.Outbound, telemetry.Inbound))
}

// groupKey derives the sharing key from the workload: proxies with equal
// keys get equal config (apart from secrets), built once for all of them.
func (pc *PushContext) groupKey(w *workload) (string, error) {
	if w.proxyType != model.SidecarProxy && w.proxyType != model.Router {
		return "", fmt.Errorf("proxy of %s: unknown type %q", w.namespace, w.proxyType)
	}
	return pc.inputsKey(w, false), nil
}

// keyBuilder writes a key of workload inputs.
type keyBuilder struct {
	strings.Builder
	// noServiceHosts leaves out the hosts of the Services an inbound port
	// serves, which only the inbound clusters read (listenerKey).
	noServiceHosts bool
}

func (pc *PushContext) inputsKey(w *workload, noServiceHosts bool) string {
	b := keyBuilder{noServiceHosts: noServiceHosts}
	for _, k := range inputKeys {
		if k.key != nil {
			k.key(pc, w, &b)
		}
	}
	return b.String()
}

// listenerKey is the group key without the Services' hosts: a sidecar's
// listeners are the same for all workloads with equal listener keys, so
// workloads of different Services that differ only in the inbound
// clusters' service names build their listeners once.
func (pc *PushContext) listenerKey(w *workload) string {
	return pc.inputsKey(w, true)
}

// workloadFor finds what pilot knows of the workload behind a proxy: its
// pod (by IP, then by name) or WorkloadEntry, and the Services selecting it.
// It returns the pod too (nil when there is none).
func (pc *PushContext) workloadFor(p *model.Proxy) (*workload, *corev1.Pod) {
	w := &workload{proxyType: p.Type, namespace: p.Namespace, serviceAccount: "default",
		namedPorts: map[string]uint32{}, meta: p.Metadata}
	pod := pc.Snap.PodByIP(p.IP)
	if pod == nil || pod.Namespace != p.Namespace {
		pod = pc.Snap.Pod(p.Namespace, p.PodName)
	}
	if pod != nil {
		w.labels = pod.Labels
		if pod.Spec.ServiceAccountName != "" {
			w.serviceAccount = pod.Spec.ServiceAccountName
		}
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name != "" {
					w.namedPorts[cp.Name] = uint32(cp.ContainerPort)
				}
			}
		}
	} else {
		for _, we := range pc.Snap.WorkloadEntries {
			if we.Namespace == p.Namespace && we.Spec.Address == p.IP {
				w.labels = we.Spec.Labels
				if we.Spec.ServiceAccount != "" {
					w.serviceAccount = we.Spec.ServiceAccount
				}
				for n, port := range we.Spec.Ports {
					w.namedPorts[n] = port
				}
				break
			}
		}
	}
	w.services = pc.Snap.ServicesFor(w.namespace, w.labels)
	return w, pod
}

// keyEpoch stands for the config group keys are derived from (every input
// of a key but the workload's own): NewPushContext makes a new one, Reuse
// (an endpoint-only change, the config unchanged) keeps its context's.
type keyEpoch struct{ _ byte } // not zero-sized: each new one is a distinct pointer

// keyMemo is a proxy's group key as it was last derived, and from what.
type keyMemo struct {
	epoch    *keyEpoch
	proxy    *model.Proxy
	pod      *corev1.Pod
	services []string // hostnames of the Services selecting it
	key      string
}

// keyFor returns the group key of w, the workload behind p on pod. With
// memo (the proxy's, nil for none) the key derived for the same proxy, pod
// object and Services under the same config is kept instead of derived
// again: an endpoint-only push regenerates every proxy using the changed
// endpoints, and deriving each one's key (its scope, policies and
// telemetry looked up by labels) was most of that push's cost.
func (pc *PushContext) keyFor(p *model.Proxy, w *workload, pod *corev1.Pod, memo *atomic.Pointer[keyMemo]) (string, error) {
	var m *keyMemo
	if memo != nil {
		m = memo.Load()
	}
	if m != nil && m.epoch == pc.epoch && m.proxy == p && m.pod == pod && len(m.services) == len(w.services) {
		same := true
		for i, svc := range w.services {
			if m.services[i] != svc.Hostname {
				same = false
				break
			}
		}
		if same {
			return m.key, nil
		}
	}
	key, err := pc.groupKey(w)
	if err != nil || memo == nil {
		return key, err
	}
	m = &keyMemo{epoch: pc.epoch, proxy: p, pod: pod, key: key, services: make([]string, len(w.services))}
	for i, svc := range w.services {
		m.services[i] = svc.Hostname
	}
	memo.Store(m)
	return key, nil
}
