package fallback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/proxy/capture"
)

// What the agent shows on the pod.
const (
	ConditionType = "mesh.io/SidecarFallback"

	ReasonExited   = "ProxyExited"
	ReasonHung     = "ProxyHung"
	ReasonNotReady = "ProxyNotReady"
	ReasonReady    = "ProxyReady"
	ReasonVetoed   = "Vetoed"
	// ReasonNetworkSetUp: the pod's network was set up again (a new node
	// agent or runtime took the pod up) with capture on.
	ReasonNetworkSetUp = "NetworkSetUp"

	EventFallback = "SidecarFallback"
	EventEnded    = "SidecarFallbackEnded"
	EventVetoed   = "SidecarFallbackVetoed"

	ProxyContainer = "mesh-proxy"
	HealthPort     = 15021
)

// Agent is the node agent: told of each pod's network as a CNI plugin is
// (Add, Remove), it watches the proxy of every pod that opted in and
// switches the pod's capture while the proxy is down and policy allows it.
type Agent struct {
	Kube kubernetes.Interface
	// Dynamic reads the Istio policies that veto a fallback.
	Dynamic dynamic.Interface
	// RootNamespace is the mesh's root namespace (mesh-system).
	RootNamespace string
	// Node names the agent in its Events.
	Node string
	Log  *slog.Logger
	// Metrics counts fallbacks; nil: not counted.
	Metrics *Metrics
	// Period is how often the health port is asked; 0 means 100 ms.
	Period time.Duration
	// Recheck is how often policy is read again while the proxy is down;
	// 0 means 10 s.
	Recheck time.Duration

	mu   sync.Mutex
	pods map[types.UID]*podWatch
}

// Pod is what the agent is told when a pod's network is set up.
type Pod struct {
	Pod *corev1.Pod
	IP  string
	// NetNS is the command prefix that runs a program in the pod's network
	// namespace, e.g. ["ip", "netns", "exec", "<ns>"].
	NetNS []string
}

type podWatch struct {
	a      *Agent
	p      Pod
	hang   time.Duration
	exited chan struct{} // the runtime saw the proxy exit
	cancel context.CancelFunc
	done   chan struct{}
}

// Add starts watching a pod whose network was just set up, when it opted
// in; a pod with an invalid opt-in gets a SidecarFallbackVetoed Event.
func (a *Agent) Add(ctx context.Context, p Pod) {
	if !hasProxy(p.Pod) {
		return
	}
	// A network just set up captures: a fallback the pod's status still
	// shows (written by an agent that stopped while the pod was in
	// fallback) no longer holds.
	for _, c := range p.Pod.Status.Conditions {
		if c.Type == ConditionType && c.Status == corev1.ConditionTrue {
			a.report(ctx, p.Pod, corev1.ConditionFalse, ReasonNetworkSetUp, "the pod's network was set up with capture on")
		}
	}
	mode, where, err := Mode(p.Pod.Annotations, nil, "")
	hang, herr := HangTimeout(p.Pod)
	if err == nil {
		err = herr
	}
	if err != nil {
		a.event(ctx, p.Pod, corev1.EventTypeWarning, EventVetoed, err.Error())
		return
	}
	if mode != ModeDirect {
		return
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &podWatch{a: a, p: p, hang: hang, exited: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	a.mu.Lock()
	if a.pods == nil {
		a.pods = map[types.UID]*podWatch{}
	}
	if old := a.pods[p.Pod.UID]; old != nil {
		a.mu.Unlock()
		cancel()
		return
	}
	a.pods[p.Pod.UID] = w
	a.mu.Unlock()
	a.log().Info("watching the proxy for fallback", "pod", p.Pod.Namespace+"/"+p.Pod.Name, "opt-in", where, "hangTimeout", hang)
	go func() { defer close(w.done); w.run(wctx) }()
}

// Remove stops watching a pod (its network is being torn down).
func (a *Agent) Remove(uid types.UID) {
	a.mu.Lock()
	w := a.pods[uid]
	delete(a.pods, uid)
	a.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
}

// ContainerExited is the runtime's event that a container's process ended
// (a CRI container event): a proxy's exit is acted on at once instead of at
// the next look at its health port.
func (a *Agent) ContainerExited(uid types.UID, container string) {
	if container != ProxyContainer {
		return
	}
	a.mu.Lock()
	w := a.pods[uid]
	a.mu.Unlock()
	if w != nil {
		select {
		case w.exited <- struct{}{}:
		default:
		}
	}
}

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func hasProxy(pod *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == ProxyContainer {
			return true
		}
	}
	return false
}

// health is what one look at the proxy's health port found.
type health int

const (
	healthReady health = iota
	healthNotReady
	healthGone // refused: nothing listens (the process exited)
	healthHung // no answer within the hang timeout
)

func (h health) reason() string {
	switch h {
	case healthNotReady:
		return ReasonNotReady
	case healthGone:
		return ReasonExited
	case healthHung:
		return ReasonHung
	}
	return ReasonReady
}

func (w *podWatch) probe(ctx context.Context, c *http.Client) health {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(w.p.IP, fmt.Sprint(HealthPort))+"/healthz/ready", nil)
	resp, err := c.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return healthHung
		}
		return healthGone
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return healthNotReady
	}
	return healthReady
}

func (w *podWatch) run(ctx context.Context) {
	a := w.a
	key := w.p.Pod.Namespace + "/" + w.p.Pod.Name
	period := a.Period
	if period == 0 {
		period = 100 * time.Millisecond
	}
	recheck := a.Recheck
	if recheck == 0 {
		recheck = 10 * time.Second
	}
	c := &http.Client{Timeout: w.hang, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	everReady, active, vetoed := false, false, false
	var kept []netip.Addr // the destinations kept captured in fallback
	var checked time.Time
	// A rule left by an agent that died while the pod was in fallback.
	if on, err := capture.FallbackActive(ctx, w.p.NetNS...); err == nil && on {
		active = true
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		h := healthGone
		select {
		case <-ctx.Done():
			return
		case <-w.exited:
		case <-tick.C:
			h = w.probe(ctx, c)
			if ctx.Err() != nil {
				return
			}
		}
		if h == healthReady {
			everReady = true
			if vetoed && !active {
				vetoed = false
				a.report(ctx, w.p.Pod, corev1.ConditionFalse, ReasonReady, "the proxy is ready")
			}
			vetoed = false
			if active {
				if err := capture.SetFallback(ctx, false, nil, w.p.NetNS...); err != nil {
					a.log().Error("capture not resumed", "pod", key, "err", err)
					continue
				}
				active, kept = false, nil
				a.log().Info("proxy ready: capture resumed", "pod", key)
				a.Metrics.ended(w.p.Pod)
				a.report(ctx, w.p.Pod, corev1.ConditionFalse, ReasonReady, "the proxy is ready: new connections go through it again")
				a.event(ctx, w.p.Pod, corev1.EventTypeNormal, EventEnded, "the proxy is ready: capture resumed for new connections")
			}
			continue
		}
		if !everReady && !active {
			continue // its first start: the pod is not serving through it yet
		}
		if (active || vetoed) && time.Since(checked) < recheck {
			continue
		}
		checked = time.Now()
		d, err := Decide(ctx, a.Kube, a.Dynamic, a.RootNamespace, w.p.Pod)
		if err != nil {
			d = Decision{Veto: []string{"policy not read (" + err.Error() + ")"}}
		}
		veto := strings.Join(d.Veto, "; ")
		if veto != "" {
			if active {
				// A policy that appeared while in fallback: fail closed now.
				if err := capture.SetFallback(ctx, false, nil, w.p.NetNS...); err != nil {
					a.log().Error("capture not restored under a veto", "pod", key, "err", err)
					continue
				}
				active, kept = false, nil
				a.Metrics.ended(w.p.Pod)
			}
			if !vetoed {
				vetoed = true
				a.log().Warn("proxy down, fallback vetoed", "pod", key, "state", h.reason(), "veto", veto)
				a.Metrics.vetoed(w.p.Pod)
				a.report(ctx, w.p.Pod, corev1.ConditionFalse, ReasonVetoed, veto)
				a.event(ctx, w.p.Pod, corev1.EventTypeWarning, EventVetoed, fmt.Sprintf("proxy %s; no fallback to direct traffic: %s", h.reason(), veto))
			}
			continue
		}
		vetoed = false
		keep := ipv4(d.Keep)
		if active {
			// The destinations that require mTLS, read again: a new pod of a
			// STRICT workload, a new rule.
			if !slices.Equal(keep, kept) {
				if err := capture.SetFallback(ctx, true, keep, w.p.NetNS...); err != nil {
					a.log().Error("destinations requiring mTLS not updated", "pod", key, "err", err)
					continue
				}
				kept = keep
				a.log().Info("destinations kept captured in fallback updated", "pod", key, "addresses", len(keep), "policies", d.Kept)
			}
			continue
		}
		if err := capture.SetFallback(ctx, true, keep, w.p.NetNS...); err != nil {
			a.log().Error("fallback not switched on", "pod", key, "err", err)
			continue
		}
		kept = keep
		active = true
		a.log().Warn("proxy down: fallback to direct traffic", "pod", key, "reason", h.reason())
		a.Metrics.fellBack(w.p.Pod, h.reason())
		msg := fmt.Sprintf("proxy %s: new connections bypass it until it is ready again", h.reason())
		if len(d.Kept) > 0 {
			msg += fmt.Sprintf("; %d addresses that require mTLS stay captured (refused): %s", len(keep), strings.Join(d.Kept, "; "))
		}
		a.report(ctx, w.p.Pod, corev1.ConditionTrue, h.reason(), msg)
		a.event(ctx, w.p.Pod, corev1.EventTypeWarning, EventFallback, msg)
	}
}

// report sets the pod's SidecarFallback condition; a strategic merge patch
// leaves the kubelet's conditions alone.
func (a *Agent) report(ctx context.Context, pod *corev1.Pod, status corev1.ConditionStatus, reason, msg string) {
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{{
		Type: ConditionType, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now(),
	}}}})
	if _, err := a.Kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil && ctx.Err() == nil {
		a.log().Warn("pod condition not set", "pod", pod.Namespace+"/"+pod.Name, "condition", ConditionType, "err", err)
	}
}

func (a *Agent) event(ctx context.Context, pod *corev1.Pod, typ, reason, msg string) {
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: pod.Name + ".", Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
			FieldPath: "spec.containers{" + ProxyContainer + "}"},
		Type: typ, Reason: reason, Message: msg, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "mesh-fallback-agent", Host: a.Node},
	}
	if _, err := a.Kube.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil && ctx.Err() == nil {
		a.log().Warn("event not recorded", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "err", err)
	}
}

// ipv4 keeps the IPv4 addresses: the capture rules are iptables' (IPv4)
// only, as mesh-proxy init writes them.
func ipv4(addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			out = append(out, a)
		}
	}
	return out
}
