// Package dashboard finds the pods behind the mesh's web UIs (the
// Prometheus, Grafana, Kiali, Jaeger and Zipkin addons, a proxy's admin
// page, pilot's debug page), port-forwards to them and opens them in a
// browser: what `mesh dashboard` does, as `istioctl dashboard` does.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"mesh.dev/mesh/internal/adminclient"
)

// Addon is a web UI installed next to the mesh, found by its pods' labels.
type Addon struct {
	Name     string // the subcommand: prometheus, grafana, ...
	Title    string // how messages name it
	Selector string // the label selector of its pods (Istio's sample addons')
	Port     int    // its UI port in the pod
	Path     string // the URL path its UI lives under
}

// Addons are the UIs `mesh dashboard` knows, with Istio's labels and ports.
var Addons = []Addon{
	{Name: "prometheus", Title: "Prometheus", Selector: "app=prometheus", Port: 9090},
	{Name: "grafana", Title: "Grafana", Selector: "app.kubernetes.io/name=grafana", Port: 3000},
	{Name: "kiali", Title: "Kiali", Selector: "app=kiali", Port: 20001, Path: "/kiali"},
	{Name: "jaeger", Title: "Jaeger", Selector: "app=jaeger", Port: 16686},
	{Name: "zipkin", Title: "Zipkin", Selector: "app=zipkin", Port: 9411},
}

// Ports of the mesh's own pages.
const (
	ProxyAdminPort = adminclient.DefaultPort // mesh-proxy's admin API (Envoy's)
	PilotDebugPort = 15014                   // mesh-pilot's debug endpoints
)

// Target is one pod port to open.
type Target struct {
	Title     string // "Prometheus", "proxy reviews-v1-x.default"
	Namespace string
	Pod       string
	Port      int
	Path      string
}

// NotFoundError says no pod could be found for a UI; Hint says what to do.
type NotFoundError struct {
	What                string // "Prometheus pod", `pod "x"`
	Namespace, Selector string
	Hint                string
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("no %s in namespace %q", e.What, e.Namespace)
	if e.Selector != "" {
		msg += fmt.Sprintf(" (label selector %s)", e.Selector)
	}
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

// FindAddon returns the pod to forward to for addon a in namespace: the
// first Running pod its selector matches.
func FindAddon(ctx context.Context, cs kubernetes.Interface, namespace string, a Addon, uiPort int) (Target, error) {
	pod, err := runningPod(ctx, cs, namespace, a.Selector)
	if err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) {
			nf.What = a.Title + " pod"
			if nf.Hint == "" {
				nf.Hint = fmt.Sprintf("the %s addon is not installed there; install it, or name the namespace it runs in with -n", a.Title)
			}
		}
		return Target{}, err
	}
	return Target{Title: a.Title, Namespace: namespace, Pod: pod.Name, Port: uiPort, Path: a.Path}, nil
}

// FindPod returns the pod that ref names in namespace, or the first
// Running pod selector matches there. ref is `[TYPE/]NAME[.NAMESPACE]`, as
// istioctl takes it: TYPE is pod (the default), deployment, statefulset,
// daemonset, replicaset, job or service, whose pods are those its selector
// matches. warn, when not empty, says a choice was made among several pods.
func FindPod(ctx context.Context, cs kubernetes.Interface, namespace, ref, selector string) (pod *corev1.Pod, warn string, err error) {
	if selector != "" {
		if _, err := labels.Parse(selector); err != nil {
			return nil, "", &UsageError{fmt.Errorf("--selector %q: %w", selector, err)}
		}
		p, n, err := runningPodCount(ctx, cs, namespace, selector)
		if err != nil {
			return nil, "", err
		}
		if n > 1 {
			warn = fmt.Sprintf("%d running pods match %s; using %s", n, selector, p.Name)
		}
		return p, warn, nil
	}
	kind, name, ns, err := ParseRef(ref)
	if err != nil {
		return nil, "", &UsageError{err}
	}
	if ns != "" {
		namespace = ns
	}
	if kind == "pod" {
		p, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, "", &NotFoundError{What: fmt.Sprintf("pod %q", name), Namespace: namespace,
				Hint: "give the pod as NAME.NAMESPACE or use -n"}
		}
		if err != nil {
			return nil, "", fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
		}
		return p, "", nil
	}
	sel, err := workloadSelector(ctx, cs, kind, namespace, name)
	if err != nil {
		return nil, "", err
	}
	p, _, err := runningPodCount(ctx, cs, namespace, sel)
	if err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) {
			nf.What = fmt.Sprintf("running pod of %s/%s", kind, name)
			nf.Hint = ""
		}
		return nil, "", err
	}
	return p, "", nil
}

// UsageError is a reference or selector that cannot be read.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

var kinds = map[string]string{
	"pod": "pod", "pods": "pod", "po": "pod",
	"deployment": "deployment", "deployments": "deployment", "deploy": "deployment",
	"statefulset": "statefulset", "statefulsets": "statefulset", "sts": "statefulset",
	"daemonset": "daemonset", "daemonsets": "daemonset", "ds": "daemonset",
	"replicaset": "replicaset", "replicasets": "replicaset", "rs": "replicaset",
	"job": "job", "jobs": "job",
	"service": "service", "services": "service", "svc": "service",
}

// ParseRef splits `[TYPE/]NAME[.NAMESPACE]` into a canonical kind (pod,
// deployment, ...), the name and the namespace ("" when not given).
func ParseRef(ref string) (kind, name, namespace string, err error) {
	kind = "pod"
	if t, rest, ok := strings.Cut(ref, "/"); ok {
		k, known := kinds[strings.ToLower(strings.TrimSuffix(t, ".apps"))]
		if !known {
			return "", "", "", fmt.Errorf("%q: unknown type %q: expected pod, deployment, statefulset, daemonset, replicaset, job or service", ref, t)
		}
		kind, ref = k, rest
	}
	name, namespace = adminclient.SplitPodName(ref)
	if name == "" || strings.Contains(name, "/") {
		return "", "", "", fmt.Errorf("%q: expected [TYPE/]NAME[.NAMESPACE]", ref)
	}
	return kind, name, namespace, nil
}

func workloadSelector(ctx context.Context, cs kubernetes.Interface, kind, ns, name string) (string, error) {
	var sel *metav1.LabelSelector
	var err error
	switch kind {
	case "deployment":
		d, e := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			sel = d.Spec.Selector
		}
	case "statefulset":
		s, e := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			sel = s.Spec.Selector
		}
	case "daemonset":
		d, e := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			sel = d.Spec.Selector
		}
	case "replicaset":
		r, e := cs.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			sel = r.Spec.Selector
		}
	case "job":
		j, e := cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			sel = j.Spec.Selector
		}
	case "service":
		s, e := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err = e; err == nil {
			if len(s.Spec.Selector) == 0 {
				return "", fmt.Errorf("service %s/%s has no selector, so no pods to forward to", ns, name)
			}
			sel = &metav1.LabelSelector{MatchLabels: s.Spec.Selector}
		}
	}
	if apierrors.IsNotFound(err) {
		return "", &NotFoundError{What: fmt.Sprintf("%s %q", kind, name), Namespace: ns}
	}
	if err != nil {
		return "", fmt.Errorf("get %s %s/%s: %w", kind, ns, name, err)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return "", fmt.Errorf("%s %s/%s: selector: %w", kind, ns, name, err)
	}
	return s.String(), nil
}

func runningPod(ctx context.Context, cs kubernetes.Interface, ns, selector string) (*corev1.Pod, error) {
	p, _, err := runningPodCount(ctx, cs, ns, selector)
	return p, err
}

// runningPodCount returns the first Running pod selector matches in ns (by
// name, so the choice is stable) and how many are running.
func runningPodCount(ctx context.Context, cs kubernetes.Interface, ns, selector string) (*corev1.Pod, int, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, 0, fmt.Errorf("list pods %s in %s: %w", selector, ns, err)
	}
	var first *corev1.Pod
	n := 0
	var phases []string
	for i := range list.Items {
		p := &list.Items[i]
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			phases = append(phases, p.Name+" is "+string(p.Status.Phase))
			continue
		}
		n++
		if first == nil || p.Name < first.Name {
			first = p
		}
	}
	if first == nil {
		nf := &NotFoundError{What: "running pod", Namespace: ns, Selector: selector}
		if len(phases) > 0 {
			nf.Hint = "none is Running: " + strings.Join(phases, ", ")
		}
		return nil, 0, nf
	}
	return first, n, nil
}

// Forward is an open port-forward to a Target with the URL that reaches it.
type Forward struct {
	URL string
	fw  *adminclient.Forward
}

// Close ends the forward.
func (f *Forward) Close() { f.fw.Close() }

// Done is closed when the forward ends; Err says why.
func (f *Forward) Done() <-chan struct{} { return f.fw.Done() }

// Err is why the forward ended.
func (f *Forward) Err() error { return f.fw.Err() }

// Open port-forwards to t, listening on address ("localhost" or an IP
// address). With localPort 0 it tries the pod's port first and, when that
// is taken here, a free one, as istioctl does.
func Open(ctx context.Context, cfg *rest.Config, t Target, address string, localPort int, errOut io.Writer) (*Forward, error) {
	prefs := []int{localPort}
	if localPort == 0 {
		prefs = []int{t.Port, 0}
	}
	var err error
	for _, lp := range prefs {
		var fw *adminclient.Forward
		fw, err = adminclient.PortForwardOn(ctx, cfg, adminclient.ForwardOptions{
			Namespace: t.Namespace, Pod: t.Pod, RemotePort: t.Port,
			Addresses: []string{address}, LocalPort: lp,
		}, errOut)
		if err == nil {
			host := net.JoinHostPort(address, strconv.Itoa(fw.LocalPort))
			return &Forward{URL: "http://" + host + t.Path, fw: fw}, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("port-forward to %s (%s/%s port %d): %w", t.Title, t.Namespace, t.Pod, t.Port, err)
}
