package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"mesh.dev/mesh/internal/fallback"
)

// maxGrace caps a pod's termination grace period: the sandbox is thrown away
// quickly and a stuck process must not hold up a test.
const maxGrace = 10 * time.Second

// podWorker runs one pod: its network, init containers in order, then its
// containers (restarted by restartPolicy), their probes, and its status.
type podWorker struct {
	rt     *Runtime
	pod    *corev1.Pod
	id     int
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	ip       netip.Addr
	net      *podNetwork
	inits    []*procState
	conts    []*procState
	probed   []*procState // native sidecars, then the containers: the kubelet probes these
	sidecars []*sidecarRun
	podCtx   context.Context // the pod's life: cancelled when it is deleted
	phase    corev1.PodPhase
	started  time.Time
	message  string
	inited   bool // init containers done (the Initialized condition)
	// svcReady: service rules may go in, after the init containers that
	// ran so far (a sidecar's capture rules come first); before a native
	// sidecar starts, which needs Services (its control plane) at once.
	svcReady  bool
	dir       string // the pod's files: hosts, volumes
	hostsFile string // bind-mounted over /etc/hosts
	// resolvFile is bind-mounted over /etc/resolv.conf.
	resolvFile string
	vols       map[string]string // volume name → folder
	events     map[string]*recordedEvent
	svcMu      sync.Mutex // held while the pod's service rules are loaded

	// reportMu makes status patches one at a time, each built on the
	// status the one before left on the API server (base).
	reportMu sync.Mutex
	base     *corev1.PodStatus
	lastSent []byte
}

func (w *podWorker) key() string { return w.pod.Namespace + "/" + w.pod.Name }

func (w *podWorker) run(ctx context.Context) {
	defer close(w.done)
	defer w.teardown()
	w.mu.Lock()
	w.podCtx = ctx
	w.started = time.Now()
	w.phase = corev1.PodPending
	for _, c := range w.pod.Spec.InitContainers {
		s := &procState{spec: c, init: true, sidecar: isSidecar(c)}
		w.inits = append(w.inits, s)
		if s.sidecar {
			w.probed = append(w.probed, s)
		}
	}
	for _, c := range w.pod.Spec.Containers {
		s := &procState{spec: c}
		w.conts = append(w.conts, s)
		w.probed = append(w.probed, s)
	}
	w.mu.Unlock()
	// Pending, not yet ready to start containers: as a kubelet reports a
	// pod it has admitted, before its sandbox exists.
	w.report(ctx)

	if err := w.setupNetwork(ctx); err != nil {
		w.fail(ctx, "NetworkSetupFailed", err)
		return
	}
	// The node agent learns of the pod's network as a CNI plugin's ADD
	// tells it, before any container runs.
	w.rt.agent.Add(ctx, fallback.Pod{Pod: w.pod, IP: w.ip.String(), NetNS: []string{"ip", "netns", "exec", w.net.ns}})
	defer w.rt.agent.Remove(w.pod.UID)
	if err := w.setupFilesRetrying(ctx); err != nil {
		w.fail(ctx, "CreateContainerConfigError", err)
		return
	}
	w.report(ctx)
	// Probes run from the start: a native sidecar's startup probe gates the
	// init containers after it.
	probeCtx, stopProbes := context.WithCancel(ctx)
	probesDone := make(chan struct{})
	go func() { defer close(probesDone); w.probeLoop(probeCtx) }()
	defer func() { stopProbes(); <-probesDone }()
	// Sidecars outlive the pod's context: they are stopped after the main
	// containers, whatever ended those.
	defer w.stopSidecars()
	for _, s := range w.inits {
		if s.sidecar {
			w.mu.Lock()
			first := !w.svcReady
			w.svcReady = true
			w.mu.Unlock()
			if first {
				w.rt.svc.sync(ctx, w)
			}
			w.startSidecar(s)
			if !w.waitStarted(ctx, s) {
				return
			}
			continue
		}
		if !w.runInit(ctx, s) {
			return
		}
	}
	w.mu.Lock()
	w.inited, w.svcReady = true, true
	w.mu.Unlock()
	w.rt.svc.sync(ctx, w)
	// The kubelet starts the containers in order, each once the one before
	// has started and its postStart hook has completed (passed or not).
	var wg sync.WaitGroup
	for _, s := range w.conts {
		wg.Add(1)
		hooked := make(chan struct{})
		go func() { defer wg.Done(); w.supervise(ctx, ctx, s, hooked) }()
		select {
		case <-hooked:
		case <-ctx.Done():
		}
	}
	w.mu.Lock()
	w.phase = corev1.PodRunning
	w.mu.Unlock()
	w.report(ctx)
	// Returns when the pod is deleted (the containers are stopped then) or
	// when every container has exited for good (restartPolicy Never or
	// OnFailure): the pod has completed.
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	// The pod has completed: its proxy stopping now is no fallback.
	w.rt.agent.Remove(w.pod.UID)
	w.stopSidecars()
	stopProbes()
	<-probesDone
	w.mu.Lock()
	w.phase = corev1.PodSucceeded
	for _, s := range w.conts {
		if s.exitCode != 0 {
			w.phase = corev1.PodFailed
		}
	}
	phase := w.phase
	w.mu.Unlock()
	w.rt.log.Info("pod completed", "pod", w.key(), "phase", phase)
	w.report(ctx)
}

// isSidecar reports whether an init container is a native sidecar
// (Kubernetes' SidecarContainers: restartPolicy Always on an init container).
func isSidecar(c corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// sidecarRun is a native sidecar's supervisor, stopped by stopSidecars.
type sidecarRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startSidecar runs a native sidecar as the kubelet does: restarted
// whenever it exits, whatever the pod's restartPolicy, until stopSidecars.
func (w *podWorker) startSidecar(s *procState) {
	ctx, cancel := context.WithCancel(context.Background())
	sr := &sidecarRun{cancel: cancel, done: make(chan struct{})}
	w.mu.Lock()
	w.sidecars = append(w.sidecars, sr)
	w.mu.Unlock()
	go func() { defer close(sr.done); w.supervise(ctx, w.podCtx, s, nil) }()
}

// waitStarted waits until a sidecar is running and its startup probe (if
// any) has passed: only then does the kubelet start the next init
// container, so the app's containers find the sidecar ready.
func (w *podWorker) waitStarted(ctx context.Context, s *procState) bool {
	for {
		w.mu.Lock()
		ok := s.running && s.startupPassed && !s.hooking
		w.mu.Unlock()
		if ok {
			w.report(ctx)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopSidecars terminates the native sidecars in the reverse of their
// order, each after the one behind it has gone, as the kubelet does once
// the main containers have exited.
func (w *podWorker) stopSidecars() {
	w.mu.Lock()
	srs := w.sidecars
	w.sidecars = nil
	w.mu.Unlock()
	for i := len(srs) - 1; i >= 0; i-- {
		srs[i].cancel()
		<-srs[i].done
	}
}

func (w *podWorker) setupNetwork(ctx context.Context) error {
	w.rt.netMu.Lock()
	ip, err := w.rt.net.allocate()
	w.rt.netMu.Unlock()
	if err != nil {
		return err
	}
	sysctls := map[string]string{}
	if sc := w.pod.Spec.SecurityContext; sc != nil {
		for _, s := range sc.Sysctls {
			sysctls[s.Name] = s.Value
		}
	}
	pn, err := w.rt.net.addPod(ctx, w.id, ip, sysctls)
	if err != nil {
		w.rt.netMu.Lock()
		w.rt.net.release(ip)
		w.rt.netMu.Unlock()
		return err
	}
	w.mu.Lock()
	w.ip, w.net = ip, pn
	w.mu.Unlock()
	return nil
}

// setupFilesRetrying is setupFiles, tried again every second while a
// ConfigMap or Secret a volume needs does not exist yet: as on a kubelet,
// the pod waits in ContainerCreating until it appears (a Secret created
// right after the Deployment that mounts it is the usual order of a
// manifest). Other errors are final.
func (w *podWorker) setupFilesRetrying(ctx context.Context) error {
	for {
		err := w.setupFiles(ctx)
		if err == nil {
			w.mu.Lock()
			if w.message != "" {
				w.message = ""
				for _, s := range append(append([]*procState(nil), w.inits...), w.conts...) {
					s.waiting, s.message = "", ""
				}
			}
			w.mu.Unlock()
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		w.mu.Lock()
		first := w.message != err.Error()
		for _, s := range append(append([]*procState(nil), w.inits...), w.conts...) {
			s.waiting, s.message = "ContainerCreating", err.Error()
		}
		w.message = err.Error()
		w.mu.Unlock()
		if first {
			w.rt.log.Info("pod waits for a volume's source", "pod", w.key(), "err", err)
			w.report(ctx)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// setupFiles writes the pod's hosts file and volumes.
func (w *podWorker) setupFiles(ctx context.Context) error {
	dir := filepath.Join(w.rt.podsDir, fmt.Sprintf("%d-%s", w.id, w.pod.Name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, nil, 0o644); err != nil {
		return err
	}
	// resolv.conf as a kubelet writes it for ClusterFirst: the cluster's
	// search path, and a nameserver the pod can route to (the bridge;
	// the sandbox runs no cluster DNS, names come from the hosts file,
	// so a query that gets there is refused at once rather than sent
	// to the host's resolver, which the pod has no route to).
	resolv := filepath.Join(dir, "resolv.conf")
	ns := w.pod.Namespace
	rc := fmt.Sprintf("nameserver %s\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", w.rt.net.gateway, ns)
	if err := os.WriteFile(resolv, []byte(rc), 0o644); err != nil {
		return err
	}
	w.mu.Lock()
	w.dir, w.hostsFile, w.resolvFile = dir, hosts, resolv
	w.mu.Unlock()
	w.rt.svc.sync(ctx, w)
	vols, err := w.prepareVolumes(ctx, filepath.Join(dir, "volumes"))
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.vols = vols
	w.mu.Unlock()
	return nil
}

func (w *podWorker) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.mu.Lock()
	pn, ip := w.net, w.ip
	w.net = nil
	w.mu.Unlock()
	if w.dir != "" {
		os.RemoveAll(w.dir)
	}
	if pn != nil {
		w.rt.svc.forget(pn.ns)
		w.rt.net.removePod(ctx, pn)
		w.rt.netMu.Lock()
		w.rt.net.release(ip)
		w.rt.netMu.Unlock()
	}
}

// fail reports the pod as not startable and waits for it to be deleted.
func (w *podWorker) fail(ctx context.Context, reason string, err error) {
	w.rt.log.Warn("pod cannot run", "pod", w.key(), "reason", reason, "err", err)
	w.mu.Lock()
	for _, s := range append(append([]*procState(nil), w.inits...), w.conts...) {
		if !s.running && s.waiting == "" {
			s.waiting, s.message = reason, err.Error()
		}
	}
	w.message = err.Error()
	w.mu.Unlock()
	w.report(ctx)
	<-ctx.Done()
}

// launch starts one container process; the returned channel closes once it exits.
func (w *podWorker) launch(ctx context.Context, s *procState) (*exec.Cmd, chan struct{}, error) {
	bin, ok := w.rt.binaryFor(s.spec.Image)
	if !ok {
		return nil, nil, fmt.Errorf("container %s: image %s has no local binary", s.spec.Name, s.spec.Image)
	}
	env, vars, err := containerEnv(ctx, w.rt.cs, w.pod, s.spec, w.ip.String())
	if err != nil {
		return nil, nil, err
	}
	argv, err := commandLine(s.spec, bin, vars)
	if err != nil {
		return nil, nil, err
	}
	mounts, err := containerMounts(s.spec, w.vols, w.hostsFile, w.resolvFile)
	if err != nil {
		return nil, nil, err
	}
	uid, gid := runAs(w.pod, s.spec)
	cmd, err := start(launchSpec{ns: w.net.ns, mounts: mounts, hostname: w.pod.Name, argv: argv, env: env, uid: uid, gid: gid,
		logFile: filepath.Join(w.rt.logDir, fmt.Sprintf("%s_%s_%s.log", w.pod.Namespace, w.pod.Name, s.spec.Name))})
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: %w", s.spec.Name, err)
	}
	done := make(chan struct{})
	w.mu.Lock()
	s.cmd, s.pid, s.done, s.running, s.started, s.waiting, s.message, s.env = cmd, cmd.Process.Pid, done, true, time.Now(), "", "", env
	s.startupPassed = s.init && !s.sidecar // an init container has no probes; a native sidecar has

	w.mu.Unlock()
	go func() {
		err := cmd.Wait()
		w.mu.Lock()
		s.running, s.ready, s.finished, s.exitCode = false, false, time.Now(), exitCode(err)
		w.mu.Unlock()
		close(done)
		// A container event, as a CRI runtime sends one to its subscribers.
		w.rt.agent.ContainerExited(w.pod.UID, s.spec.Name)
	}()
	return cmd, done, nil
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if c := ee.ExitCode(); c >= 0 {
			return c
		}
		return 137
	}
	return 128
}

func runAs(pod *corev1.Pod, c corev1.Container) (uid, gid *int64) {
	if sc := pod.Spec.SecurityContext; sc != nil {
		uid, gid = sc.RunAsUser, sc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	return uid, gid
}

// backoff is the pause before the n-th restart, doubling up to 10 s.
func backoff(n int32) time.Duration {
	d := 500 * time.Millisecond << min(n, 5)
	return min(d, 10*time.Second)
}

// runInit runs an init container to success, retrying failures as the
// kubelet does unless restartPolicy is Never.
func (w *podWorker) runInit(ctx context.Context, s *procState) bool {
	for {
		_, done, err := w.launch(ctx, s)
		if err != nil {
			w.fail(ctx, "CreateContainerError", err)
			return false
		}
		w.report(ctx)
		select {
		case <-done:
		case <-ctx.Done():
			w.stopAll(ctx)
			return false
		}
		w.mu.Lock()
		code := s.exitCode
		w.mu.Unlock()
		if code == 0 {
			w.report(ctx)
			return true
		}
		w.mu.Lock()
		s.lastTerm = s.terminated()
		if w.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			w.phase = corev1.PodFailed
			w.mu.Unlock()
			w.report(ctx)
			<-ctx.Done()
			return false
		}
		s.restarts++
		s.waiting, s.message = "CrashLoopBackOff", fmt.Sprintf("init container exited with %d", code)
		n := s.restarts
		w.mu.Unlock()
		w.report(ctx)
		select {
		case <-time.After(backoff(n)):
		case <-ctx.Done():
			return false
		}
	}
}

// supervise keeps a container running according to restartPolicy (always,
// for a native sidecar) until ctx ends, reporting with report's context.
// It returns once the container has exited for good or ctx has ended.
func (w *podWorker) supervise(ctx, rctx context.Context, s *procState, hooked chan struct{}) {
	// hooked is closed once the first start's postStart hook is over (or
	// the container could not start at all).
	signal := func() {
		if hooked != nil {
			close(hooked)
			hooked = nil
		}
	}
	defer signal()
	for {
		cmd, done, err := w.launch(ctx, s)
		if err != nil {
			w.mu.Lock()
			s.waiting, s.message = "CreateContainerError", err.Error()
			w.mu.Unlock()
			w.rt.log.Warn("container cannot start", "pod", w.key(), "err", err)
			w.report(rctx)
			signal()
			<-ctx.Done()
			return
		}
		w.report(rctx)
		if !w.postStart(ctx, s) {
			// As the kubelet: a failed postStart kills the container.
			stopProcess(context.Background(), cmd, done, 0)
		}
		signal()
		w.report(rctx)
		select {
		case <-ctx.Done():
			w.preStop(s)
			stopProcess(context.Background(), cmd, done, w.grace())
			w.report(rctx)
			return
		case <-done:
		}
		w.mu.Lock()
		code := s.exitCode
		policy := w.pod.Spec.RestartPolicy
		restart := s.sidecar || policy == corev1.RestartPolicyAlways || policy == "" || (policy == corev1.RestartPolicyOnFailure && code != 0)
		if restart {
			s.lastTerm = s.terminated()
			s.restarts++
			s.waiting, s.message = "CrashLoopBackOff", fmt.Sprintf("exited with %d; restarting", code)
		}
		n := s.restarts
		w.mu.Unlock()
		w.rt.log.Info("container exited", "pod", w.key(), "container", s.spec.Name, "code", code, "restart", restart)
		w.report(rctx)
		if !restart {
			return
		}
		select {
		case <-time.After(backoff(n - 1)):
		case <-ctx.Done():
			return
		}
	}
}

func (w *podWorker) grace() time.Duration {
	g := maxGrace
	if p := w.pod.Spec.TerminationGracePeriodSeconds; p != nil && time.Duration(*p)*time.Second < g {
		g = time.Duration(*p) * time.Second
	}
	return g
}

func (w *podWorker) stopAll(ctx context.Context) {
	w.mu.Lock()
	var procs []*procState
	for _, s := range append(append([]*procState(nil), w.inits...), w.conts...) {
		if s.running {
			procs = append(procs, s)
		}
	}
	w.mu.Unlock()
	for _, s := range procs {
		stopProcess(context.Background(), s.cmd, s.done, w.grace())
	}
}

// report sends the pod's status when it differs from what was last sent.
//
// As the kubelet, it sends a two-way strategic merge patch from the status
// the API server holds to that status with the runtime's fields replaced,
// so conditions of types the runtime does not own (readiness gates, the
// fallback agent's mesh.io/SidecarFallback) are left as they are. The base
// must be what the server holds: a patch built from anything else leaves
// the server's differing fields in place. So the first patch of a worker is
// built on the pod as read then (a pod left bound to the node by a runtime
// that stopped holds that runtime's addresses and containers), each later
// one on the status the previous patch returned, and patches are sent one
// at a time (two built on the same base undo each other's changes).
func (w *podWorker) report(ctx context.Context) {
	w.reportMu.Lock()
	defer w.reportMu.Unlock()
	w.mu.Lock()
	st := w.statusLocked()
	w.mu.Unlock()
	body, err := json.Marshal(st)
	if err != nil || string(body) == string(w.lastSent) || ctx.Err() != nil {
		return
	}
	base := w.base
	if base == nil {
		if cur, err := w.rt.cs.CoreV1().Pods(w.pod.Namespace).Get(ctx, w.pod.Name, metav1.GetOptions{}); err == nil && cur.UID == w.pod.UID {
			base = &cur.Status
		} else {
			base = &w.pod.Status
		}
	}
	patch, err := statusPatch(base, st)
	if err != nil {
		w.rt.log.Warn("pod status patch not built", "pod", w.key(), "err", err)
		return
	}
	got, err := w.rt.cs.CoreV1().Pods(w.pod.Namespace).Patch(ctx, w.pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		// The next patch is built on the status read afresh: one refused
		// for its base would be refused again.
		w.base = nil
		if ctx.Err() == nil && !apierrors.IsNotFound(err) {
			// As a kubelet's status manager resyncs: a write lost to a busy
			// or restarting API server is tried again, not given up on.
			w.rt.log.Warn("pod status not sent; retrying in 1s", "pod", w.key(), "err", err)
			time.AfterFunc(time.Second, func() { w.report(ctx) })
		}
		return
	}
	w.base, w.lastSent = &got.Status, body
}

// statusPatch is the strategic merge patch that turns base, the status on
// the API server, into base with the runtime's fields set from st: its
// phase, message, addresses, start time, container statuses and conditions
// of the types st has; other writers' conditions and fields stay.
func statusPatch(base *corev1.PodStatus, st corev1.PodStatus) ([]byte, error) {
	next := base.DeepCopy()
	next.Phase, next.Message, next.Reason = st.Phase, st.Message, st.Reason
	next.HostIP, next.HostIPs, next.PodIP, next.PodIPs = st.HostIP, st.HostIPs, st.PodIP, st.PodIPs
	next.StartTime = st.StartTime
	next.InitContainerStatuses, next.ContainerStatuses = st.InitContainerStatuses, st.ContainerStatuses
	owned := map[corev1.PodConditionType]bool{}
	for _, c := range st.Conditions {
		owned[c.Type] = true
	}
	next.Conditions = append([]corev1.PodCondition(nil), st.Conditions...)
	for _, c := range base.Conditions {
		if !owned[c.Type] {
			next.Conditions = append(next.Conditions, c)
		}
	}
	from, err := json.Marshal(map[string]any{"status": base})
	if err != nil {
		return nil, err
	}
	to, err := json.Marshal(map[string]any{"status": next})
	if err != nil {
		return nil, err
	}
	return strategicpatch.CreateTwoWayMergePatch(from, to, corev1.Pod{})
}

func (w *podWorker) statusLocked() corev1.PodStatus {
	st := corev1.PodStatus{Phase: w.phase, HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}},
		StartTime: &metav1.Time{Time: w.started.Truncate(time.Second)}, Message: w.message}
	if w.net != nil {
		st.PodIP = w.ip.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	allReady := len(w.conts) > 0 && w.phase == corev1.PodRunning
	for _, s := range w.inits {
		cs := s.status(s.spec.Image)
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		if s.sidecar {
			allReady = allReady && cs.Ready // a native sidecar counts towards the pod's readiness
		}
	}
	initialized := w.inited
	for _, s := range w.conts {
		cs := s.status(s.spec.Image)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		allReady = allReady && cs.Ready
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse}
		if ok {
			c.Status = corev1.ConditionTrue
		} else {
			c.Reason = reason
		}
		return c
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, w.net != nil, ""),
		cond(corev1.PodInitialized, initialized, "ContainersNotInitialized"),
		cond(corev1.ContainersReady, allReady, "ContainersNotReady"),
		cond(corev1.PodReady, allReady, "ContainersNotReady"),
		cond(corev1.PodScheduled, true, ""),
	}
	return st
}
