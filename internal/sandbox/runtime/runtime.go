// Package runtime runs, for real, the sandbox's pods whose images are this
// project's own (mesh-pilot, mesh-proxy, mesh-sample): each such pod is bound
// to a node of the runtime's, gets a network namespace of its own holding its
// pod IP (a veth to a host bridge), runs its init containers and then its
// containers as local processes there, and has its status reported through
// the API server. Other pods stay on kwok's simulated nodes.
//
// It is test and demo machinery: it needs root, iproute2 and iptables, and
// nothing in the product imports it.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"mesh.dev/mesh/internal/fallback"
	"mesh.dev/mesh/internal/sandbox"
)

// Binaries are the image names the runtime can run, each the name of the
// binary `make build` puts in bin/.
var Binaries = []string{"mesh-pilot", "mesh-proxy", "mesh-sample"}

// Options configures Start.
type Options struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Images maps an image name (the repository's last path element, no
	// tag) to the local binary that plays it.
	Images map[string]string
	// WebhookCertPEM and WebhookKeyPEM serve the placement webhook on
	// 127.0.0.1; CABundle is what the API server verifies them with.
	WebhookCertPEM, WebhookKeyPEM, CABundle []byte
	// Subnet is the pod subnet to take, X of 198.18.X.0/24 (so the node
	// name sandbox-runtime-X), as a kubelet restarted on its node keeps
	// the node's name; taken by a live runtime, Start fails. 0: the first
	// free one.
	Subnet int
	// LogDir receives one <namespace>_<pod>_<container>.log per container;
	// empty means a temporary folder removed by Stop.
	LogDir string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// AgentMetricsAddress is where the fallback node agent serves its
	// metrics at /metrics (host:port; port 0 picks one, AgentMetricsAddr
	// says which); empty: not served.
	AgentMetricsAddress string
}

// Runtime is a running sandbox runtime.
type Runtime struct {
	cs         kubernetes.Interface
	log        *slog.Logger
	images     map[string]string
	node       string
	nodeObj    *corev1.Node
	logDir     string
	ownsLogDir bool
	webhookSrv *http.Server
	kubeletSrv *http.Server
	// kubeletPort serves the node's kubelet API (logs, port-forward, exec).
	kubeletPort int
	podsDir     string
	svc         *services
	// agent is the mesh's fallback node agent (docs/fallback.md), told of
	// pod networks and container exits as a CNI node agent is.
	agent        *fallback.Agent
	agentMetrics *prometheus.Registry
	metricsSrv   *http.Server
	metricsAddr  string

	netMu sync.Mutex
	net   *network

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	nextID  int

	cancel   context.CancelFunc
	bg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// ForCluster fills Options for a sandbox cluster: admin access, a webhook
// certificate from its CA, and the binaries found in binDir (those of
// Binaries that exist there).
func ForCluster(c *sandbox.Cluster, binDir string) (Options, error) {
	certPEM, keyPEM, err := c.ServingCert("127.0.0.1")
	if err != nil {
		return Options{}, err
	}
	images := map[string]string{}
	for _, b := range Binaries {
		p := filepath.Join(binDir, b)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			images[b] = p
		}
	}
	if len(images) == 0 {
		return Options{}, fmt.Errorf("sandbox runtime: none of %v in %s: run `make build`", Binaries, binDir)
	}
	return Options{Config: c.RESTConfig(), Images: images, WebhookCertPEM: certPEM, WebhookKeyPEM: keyPEM, CABundle: c.CAPEM()}, nil
}

// CheckHost says why the runtime cannot run on this machine (not root, a
// missing tool), or nil when it can.
func CheckHost() error { return checkHost() }

// Start claims a pod network, registers the runtime's node and placement
// webhook, and runs the pods bound to the node until Stop. On failure
// nothing is left behind.
func Start(ctx context.Context, o Options) (*Runtime, error) {
	if err := checkHost(); err != nil {
		return nil, err
	}
	if o.Config == nil || len(o.Images) == 0 {
		return nil, errors.New("sandbox runtime: Config and Images are required")
	}
	for name, bin := range o.Images {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("sandbox runtime: binary for image %s: %w (run `make build`)", name, err)
		}
	}
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	r := &Runtime{cs: cs, log: o.Logger, images: o.Images, logDir: o.LogDir, workers: map[types.UID]*podWorker{}}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dyn, err := dynamic.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	r.agentMetrics = prometheus.NewRegistry()
	r.agent = &fallback.Agent{Kube: cs, Dynamic: dyn, RootNamespace: "mesh-system", Log: r.log.With("component", "fallback-agent"),
		Metrics: fallback.NewMetrics(r.agentMetrics)}
	if r.logDir == "" {
		if r.logDir, err = os.MkdirTemp("", "mesh-sandbox-runtime-"); err != nil {
			return nil, err
		}
		r.ownsLogDir = true
	} else if err := os.MkdirAll(r.logDir, 0o755); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	// Not under /tmp: pods mount volumes over /tmp, which would hide the
	// sources of the volumes mounted after it.
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		r.Stop()
		return nil, err
	}
	if r.podsDir, err = os.MkdirTemp(lockDir, "pods-"); err != nil {
		r.Stop()
		return nil, err
	}
	if r.net, err = claimNetwork(ctx, o.Subnet); err != nil {
		r.Stop()
		return nil, err
	}
	if err := r.forwardAPIServer(bg, o.Config.Host); err != nil {
		r.Stop()
		return nil, fmt.Errorf("sandbox runtime: %w", err)
	}
	r.startServices(bg)
	if o.AgentMetricsAddress != "" {
		srv, addr, err := fallback.ServeMetrics(o.AgentMetricsAddress, r.agentMetrics, r.log)
		if err != nil {
			r.Stop()
			return nil, fmt.Errorf("sandbox runtime: %w", err)
		}
		r.metricsSrv, r.metricsAddr = srv, addr.String()
	}
	if err := r.startKubelet(o); err != nil {
		r.Stop()
		return nil, fmt.Errorf("sandbox runtime: %w", err)
	}
	r.node = fmt.Sprintf("sandbox-runtime-%d", r.net.subnet)
	r.agent.Node = r.node
	if err := r.registerNode(ctx); err != nil {
		r.Stop()
		return nil, fmt.Errorf("sandbox runtime: %w", err)
	}
	r.bg.Add(2)
	go func() { defer r.bg.Done(); r.heartbeatLoop(bg) }()
	go func() { defer r.bg.Done(); r.watchPods(bg) }()
	if err := r.startWebhook(ctx, o); err != nil {
		r.Stop()
		return nil, fmt.Errorf("sandbox runtime: %w", err)
	}
	r.log.Info("sandbox runtime ready", "node", r.node, "podCIDR", r.net.CIDR(), "logs", r.logDir)
	return r, nil
}

// NodeName is the node the runtime's pods are bound to.
func (r *Runtime) NodeName() string { return r.node }

// PodCIDR is the range the runtime's pods get addresses from.
func (r *Runtime) PodCIDR() string { return r.net.CIDR() }

// Gateway is the host's address on the pods' network.
func (r *Runtime) Gateway() string { return r.net.gateway.String() }

// AgentMetricsAddr is the host:port where the fallback node agent serves
// its series (mesh_sidecar_fallbacks_total, ...) at /metrics, "" when
// Options.AgentMetricsAddress was empty.
func (r *Runtime) AgentMetricsAddr() string { return r.metricsAddr }

// LogDir holds the containers' logs.
func (r *Runtime) LogDir() string { return r.logDir }

// NetNS returns the network namespace name of a running pod (for `ip netns
// exec`), or "" when the runtime does not run it.
func (r *Runtime) NetNS(uid types.UID) string {
	r.mu.Lock()
	w := r.workers[uid]
	r.mu.Unlock()
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.net == nil {
		return ""
	}
	return w.net.ns
}

// DialFromPod opens a TCP connection to addr (a literal address) from
// inside the network namespace of a running pod, as a process of the pod
// running as root would: its sidecar's capture rules apply to it.
func (r *Runtime) DialFromPod(ctx context.Context, uid types.UID, addr string) (net.Conn, error) {
	ns := r.NetNS(uid)
	if ns == "" {
		return nil, fmt.Errorf("pod %s does not run on this runtime", uid)
	}
	return dialInNetNS(ctx, ns, addr)
}

func (r *Runtime) binaryFor(image string) (string, bool) {
	b, ok := r.images[imageName(image)]
	return b, ok
}

// watchPods starts a worker for each pod bound to the node and stops it when
// the pod is deleted, then lets the deletion finish as a kubelet does.
func (r *Runtime) watchPods(ctx context.Context) {
	lw := cache.NewListWatchFromClient(r.cs.CoreV1().RESTClient(), "pods", metav1.NamespaceAll,
		fields.OneTermEqualSelector("spec.nodeName", r.node))
	_, inf := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.Pod{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { r.sync(ctx, o) },
			UpdateFunc: func(_, o any) { r.sync(ctx, o) },
			DeleteFunc: func(o any) {
				if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
					o = d.Obj
				}
				if p, ok := o.(*corev1.Pod); ok {
					r.stopPod(p.UID)
				}
			},
		},
	})
	inf.RunWithContext(ctx)
}

func (r *Runtime) sync(ctx context.Context, o any) {
	pod, ok := o.(*corev1.Pod)
	if !ok || ctx.Err() != nil {
		// Stopping: Stop itself stops every pod.
		return
	}
	if pod.DeletionTimestamp != nil {
		uid := pod.UID
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			r.stopPod(uid)
			// The containers are gone: finish the deletion, as the kubelet does.
			err := r.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &uid}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
				r.log.Warn("finish pod deletion", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			}
		}()
		return
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.workers[pod.UID]; ok || ctx.Err() != nil {
		return
	}
	r.nextID++
	wctx, cancel := context.WithCancel(ctx)
	w := &podWorker{rt: r, pod: pod.DeepCopy(), id: r.nextID, cancel: cancel, done: make(chan struct{})}
	r.workers[pod.UID] = w
	r.log.Info("starting pod", "pod", w.key())
	go w.run(wctx)
}

// stopPod stops a pod's processes and removes its namespace; it returns when both are gone.
func (r *Runtime) stopPod(uid types.UID) {
	r.mu.Lock()
	w := r.workers[uid]
	delete(r.workers, uid)
	r.mu.Unlock()
	if w == nil {
		return
	}
	// The node agent stops watching before the containers are stopped:
	// their exits are the pod's end, not a sidecar to fall back from.
	r.agent.Remove(uid)
	w.cancel()
	<-w.done
	r.log.Info("stopped pod", "pod", w.key())
}

// Stop stops every pod, removes the node, the webhook, the namespaces and
// the bridge. It is safe to call more than once.
func (r *Runtime) Stop() error {
	r.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if r.webhookSrv != nil {
			_ = r.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, r.webhookName(), metav1.DeleteOptions{})
			r.webhookSrv.Close()
		}
		// Before the pods' contexts end and their containers stop (stopPod
		// would be too late for that): the node agent takes no exit of a
		// stopping runtime's containers for a sidecar to fall back from.
		r.mu.Lock()
		var watched []types.UID
		for uid := range r.workers {
			watched = append(watched, uid)
		}
		r.mu.Unlock()
		for _, uid := range watched {
			r.agent.Remove(uid)
		}
		if r.cancel != nil {
			r.cancel()
		}
		if r.kubeletSrv != nil {
			r.kubeletSrv.Close()
		}
		if r.metricsSrv != nil {
			r.metricsSrv.Close()
		}
		r.mu.Lock()
		var uids []types.UID
		for uid := range r.workers {
			uids = append(uids, uid)
		}
		r.mu.Unlock()
		for _, uid := range uids {
			r.stopPod(uid)
		}
		r.bg.Wait()
		if r.nodeObj != nil {
			// The pod garbage collector removes the pods left bound to a node that is gone.
			if err := r.cs.CoreV1().Nodes().Delete(ctx, r.node, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				r.stopErr = fmt.Errorf("sandbox runtime: delete node %s: %w", r.node, err)
			}
		}
		if r.net != nil {
			r.net.close(ctx)
		}
		if r.ownsLogDir {
			os.RemoveAll(r.logDir)
		}
		if r.podsDir != "" {
			os.RemoveAll(r.podsDir)
		}
	})
	return r.stopErr
}
