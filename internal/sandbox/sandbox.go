// Package sandbox runs a real Kubernetes control plane on 127.0.0.1 for tests
// and for local use: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, built from Go modules by tools/ (`make tools`).
//
// There is no container runtime: kwok plays the kubelet for one or more
// simulated nodes and turns scheduled pods Running and Ready, with pod IPs
// from PodCIDR. Everything else (validation, server-side apply, RBAC,
// admission webhooks, controllers, EndpointSlices) is the real thing.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// defaultStartTimeout bounds Start when the caller's context has no deadline.
// Start-up takes seconds once built; the margin is for loaded CI machines.
const defaultStartTimeout = 2 * time.Minute

// Options configures Start. The zero value starts a full sandbox with one node
// in a temporary folder that Stop removes.
type Options struct {
	// Dir holds the sandbox's certificates, etcd data, logs and kubeconfigs.
	// Empty means a new temporary folder, removed by Stop. A given folder is
	// reset at start and kept after Stop (its logs stay readable).
	Dir string
	// BinDir holds the binaries; empty means FindBinDir.
	BinDir string
	// Nodes is the number of kwok nodes; 0 means 1.
	Nodes int
	// Detach lets the components outlive the calling process (for
	// `make sandbox-up`); otherwise they die with it.
	Detach bool
	// APIServerPort and EtcdPort fix those ports on 127.0.0.1; 0 picks free ones.
	APIServerPort int
	EtcdPort      int
	// PortForwards are pod ports that a port-forward (kubectl port-forward, or
	// the apiserver's portforward subresource) connects to the same port on
	// 127.0.0.1, whichever pod it names.
	PortForwards []int32
	// KeepDir leaves a temporary folder (logs included) in place after Stop,
	// for looking into a failure.
	KeepDir bool
	// EtcdOnly starts etcd alone: the baseline the benchmarks compare with.
	EtcdOnly bool
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Timings says how long the phases of Start took, measured from its call.
type Timings struct {
	EtcdReady      time.Duration // etcd answers /health
	APIServerReady time.Duration // the apiserver answers /readyz
	Ready          time.Duration // nodes Ready and schedulable, default ServiceAccount present
}

// Cluster is a running sandbox.
type Cluster struct {
	dir     string
	ownsDir bool
	keepDir bool
	binDir  string
	log     *slog.Logger
	ca      *authority
	admin   keyPair
	server  string
	ports   ports
	procs   []*process
	nodes   []string
	timings Timings

	stopOnce sync.Once
	stopErr  error
}

// Start starts a sandbox and returns once its API is usable: the apiserver is
// ready, every node is Ready without taints and the default ServiceAccount
// exists, so pods can be created and get scheduled. On failure nothing is left
// running and the error is a *StartError naming the component.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	began := time.Now()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	binDir := o.BinDir
	if binDir == "" {
		d, err := FindBinDir()
		if err != nil {
			return nil, &StartError{Component: Etcd, Err: err, Hint: "run from inside the repository or set " + BinEnv}
		}
		binDir = d
	}
	need := components
	if o.EtcdOnly {
		need = []string{Etcd}
	} else {
		need = append(append([]string(nil), components...), stagesFileName)
	}
	if err := checkBinaries(binDir, need); err != nil {
		if se, ok := err.(*StartError); ok && se.Component == stagesFileName {
			se.Component = Kwok
		}
		return nil, err
	}

	// Free ports are found by binding and releasing them, so another process
	// (often a sandbox of a test package running in parallel) can take one
	// before the component binds it. Ports picked here are picked again then;
	// ports the caller fixed are not.
	const attempts = 3
	for i := 1; ; i++ {
		c, err := startOnce(ctx, o, binDir, log, began)
		if err == nil {
			return c, nil
		}
		var se *StartError
		portClash := errors.As(err, &se) && strings.Contains(se.LogTail, "address already in use")
		if !portClash || o.APIServerPort != 0 || o.EtcdPort != 0 || i == attempts || ctx.Err() != nil {
			return nil, err
		}
		log.Warn("a chosen port was taken; starting again with new ports", "component", se.Component)
	}
}

func startOnce(ctx context.Context, o Options, binDir string, log *slog.Logger, began time.Time) (*Cluster, error) {
	c := &Cluster{binDir: binDir, log: log, keepDir: o.KeepDir}
	if err := c.prepareDir(o.Dir); err != nil {
		return nil, err
	}
	if err := c.start(ctx, o, began); err != nil {
		_ = c.Stop()
		// The log tail is in the error; a removed temporary folder's path is not worth printing.
		var se *StartError
		if c.ownsDir && !c.keepDir && errors.As(err, &se) {
			se.LogPath = ""
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, o Options, began time.Time) error {
	log := c.log
	l := layout{c.dir}

	p, err := freePorts(4)
	if err != nil {
		return &StartError{Component: Etcd, Err: err, Hint: "check that 127.0.0.1 is configured (ip addr show lo)"}
	}
	c.ports = ports{EtcdClient: p[0], EtcdPeer: p[1], APIServer: p[2], Kwok: p[3]}
	if o.EtcdPort != 0 {
		c.ports.EtcdClient = o.EtcdPort
	}
	if o.APIServerPort != 0 {
		c.ports.APIServer = o.APIServerPort
	}
	c.server = "https://127.0.0.1:" + strconv.Itoa(c.ports.APIServer)
	if err := c.writePKI(l); err != nil {
		return err
	}

	etcd, err := c.launch(Etcd, o.Detach, etcdArgs(l, c.ports))
	if err != nil {
		return err
	}
	if err := c.waitEtcd(ctx, etcd); err != nil {
		return err
	}
	c.timings.EtcdReady = time.Since(began)
	log.Info("etcd ready", "after", c.timings.EtcdReady, "url", etcdURL(c.ports.EtcdClient))
	if o.EtcdOnly {
		c.timings.Ready = c.timings.EtcdReady
		return c.writeState()
	}

	api, err := c.launch(APIServer, o.Detach, apiserverArgs(l, c.ports))
	if err != nil {
		return err
	}
	if err := writeKubeconfig(l.kubeconfig(), c.server, c.ca.certPEM, "mesh-sandbox-admin", c.admin); err != nil {
		return err
	}
	if err := c.waitAPIServer(ctx, api); err != nil {
		return err
	}
	c.timings.APIServerReady = time.Since(began)
	log.Info("kube-apiserver ready", "after", c.timings.APIServerReady, "server", c.server)

	if err := os.WriteFile(l.kwokConfig(), []byte(kwokConfig(o.PortForwards)), 0o644); err != nil {
		return err
	}
	for _, s := range []struct {
		name string
		args []string
	}{
		{ControllerManager, controllerManagerArgs(l)},
		{Scheduler, schedulerArgs(l)},
		{Kwok, kwokArgs(l, c.ports, filepath.Join(c.binDir, stagesFileName))},
	} {
		if _, err := c.launch(s.name, o.Detach, s.args); err != nil {
			return err
		}
	}
	if err := c.writeState(); err != nil {
		return err
	}
	if err := c.startNodes(ctx, o.Nodes); err != nil {
		return err
	}
	c.timings.Ready = time.Since(began)
	log.Info("sandbox ready", "after", c.timings.Ready, "kubeconfig", l.kubeconfig())
	return nil
}

// prepareDir creates the sandbox folder, or resets a given one.
func (c *Cluster) prepareDir(dir string) error {
	if dir == "" {
		cleanStaleTempDirs()
		d, err := os.MkdirTemp("", tempDirPrefix)
		if err != nil {
			return fmt.Errorf("sandbox: create temporary folder: %w", err)
		}
		c.dir, c.ownsDir = d, true
		return os.WriteFile(filepath.Join(d, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if st, err := readState(abs); err == nil && st.anyAlive() {
		return &StartError{Component: Etcd, Err: fmt.Errorf("a sandbox is already running in %s", abs),
			Hint: "stop it first with `make sandbox-down` (or use its kubeconfig, " + layout{abs}.kubeconfig() + ")"}
	}
	l := layout{abs}
	for _, p := range []string{filepath.Join(abs, "pki"), l.etcdData(), l.logs(), l.users(), l.kubeconfig(), l.kwokConfig(), l.state()} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("sandbox: reset %s: %w", p, err)
		}
	}
	c.dir = abs
	return nil
}

func (c *Cluster) writePKI(l layout) error {
	if err := os.MkdirAll(filepath.Join(c.dir, "pki"), 0o700); err != nil {
		return err
	}
	for _, d := range []string{l.logs(), l.users()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	ca, err := newAuthority()
	if err != nil {
		return err
	}
	c.ca = ca
	if err := os.WriteFile(l.pki("ca.crt"), ca.certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(l.pki("ca.key"), ca.keyPEM, 0o600); err != nil {
		return err
	}
	serving, err := ca.serving(APIServer, "127.0.0.1", "localhost", kubernetesServiceIP,
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	if err != nil {
		return err
	}
	if _, _, err := writeKeyPair(filepath.Join(c.dir, "pki"), "apiserver", serving); err != nil {
		return err
	}
	kwokServing, err := ca.serving(Kwok, "127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	if _, _, err := writeKeyPair(filepath.Join(c.dir, "pki"), "kwok", kwokServing); err != nil {
		return err
	}
	kubeletClient, err := ca.client("kube-apiserver-kubelet-client", "system:masters")
	if err != nil {
		return err
	}
	if _, _, err := writeKeyPair(filepath.Join(c.dir, "pki"), "apiserver-kubelet-client", kubeletClient); err != nil {
		return err
	}
	c.admin, err = ca.client("mesh-sandbox-admin", "system:masters")
	if err != nil {
		return err
	}
	priv, pub, err := serviceAccountKey()
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.pki("sa.key"), priv, 0o600); err != nil {
		return err
	}
	return os.WriteFile(l.pki("sa.pub"), pub, 0o600)
}

func (c *Cluster) launch(name string, detach bool, args []string) (*process, error) {
	p, err := launch(name, filepath.Join(c.binDir, name), layout{c.dir}.logs(), detach, args)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// RESTConfig returns a client configuration for the cluster administrator
// (group system:masters). Each call returns a new copy.
func (c *Cluster) RESTConfig() *rest.Config {
	return restConfig(c.server, c.ca.certPEM, c.admin)
}

// KubeconfigPath returns the administrator's kubeconfig file.
func (c *Cluster) KubeconfigPath() string { return layout{c.dir}.kubeconfig() }

// Server returns the apiserver's URL, https://127.0.0.1:<port>.
func (c *Cluster) Server() string { return c.server }

// Dir returns the sandbox folder.
func (c *Cluster) Dir() string { return c.dir }

// BinDir returns the folder the binaries were started from.
func (c *Cluster) BinDir() string { return c.binDir }

// LogDir returns the folder holding one <component>.log per component.
func (c *Cluster) LogDir() string { return layout{c.dir}.logs() }

// Nodes returns the names of the kwok nodes.
func (c *Cluster) Nodes() []string { return append([]string(nil), c.nodes...) }

// Timings returns how long start-up took.
func (c *Cluster) Timings() Timings { return c.timings }

// PIDs returns the process id of each running component.
func (c *Cluster) PIDs() map[string]int {
	out := map[string]int{}
	for _, p := range c.procs {
		if p.alive() {
			out[p.name] = p.cmd.Process.Pid
		}
	}
	return out
}

// MemoryRSS returns the resident memory of each component and their sum, in bytes.
func (c *Cluster) MemoryRSS() (total int64, each map[string]int64, err error) {
	each = map[string]int64{}
	for name, pid := range c.PIDs() {
		rss, err := rssBytes(pid)
		if err != nil {
			return 0, nil, fmt.Errorf("sandbox: memory of %s: %w", name, err)
		}
		each[name] = rss
		total += rss
	}
	return total, each, nil
}

// Stop stops every component (SIGTERM, then SIGKILL after a grace period) and
// removes the folder if Start created it. It is safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop(5 * time.Second)
		}
		if c.ownsDir && c.keepDir {
			// Without its owner file a later start does not take the folder for stale.
			_ = os.Remove(filepath.Join(c.dir, ownerFile))
		}
		if c.ownsDir && !c.keepDir {
			c.stopErr = os.RemoveAll(c.dir)
		} else if c.dir != "" {
			if err := os.Remove(layout{c.dir}.state()); err != nil && !os.IsNotExist(err) {
				c.stopErr = err
			}
		}
	})
	return c.stopErr
}
