package runtime_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"mesh.dev/mesh/internal/sandbox/runtime"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	// Run inside a pod's namespace by TestServicesTokensAndAPIServerFromPods.
	if os.Getenv("RUNTIME_TEST_HELPER") == "apiserver" {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get("https://" + os.Getenv("KUBERNETES_SERVICE_HOST") + "/version")
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		io.Copy(os.Stdout, resp.Body)
		os.Exit(0)
	}
	sandboxtest.Main(m)
}

// startRuntime builds the sample app and starts a runtime on the package's sandbox.
func startRuntime(t *testing.T) (*runtime.Runtime, kubernetes.Interface) {
	t.Helper()
	rt, cs, _ := startRuntimeBin(t)
	return rt, cs
}

// startRuntimeBin is startRuntime, also returning the folder (under the
// test's temporary folder, so under /tmp) holding the sample app's binary.
func startRuntimeBin(t *testing.T) (*runtime.Runtime, kubernetes.Interface, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox runtime needs root")
	}
	c := sandboxtest.Cluster(t)
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin, "mesh.dev/mesh/cmd/mesh-sample").CombinedOutput(); err != nil {
		t.Fatalf("build mesh-sample: %v\n%s", err, out)
	}
	return startRuntimeWith(t, bin), kubernetes.NewForConfigOrDie(c.RESTConfig()), bin
}

// startRuntimeWith starts a runtime on the package's sandbox running the
// binaries in bin; the test's cleanup stops it.
func startRuntimeWith(t *testing.T, bin string) *runtime.Runtime {
	t.Helper()
	return startRuntimeOn(t, bin, 0)
}

// startRuntimeOn is startRuntimeWith on pod subnet subnet (0: the first
// free one).
func startRuntimeOn(t *testing.T, bin string, subnet int) *runtime.Runtime {
	t.Helper()
	o, err := runtime.ForCluster(sandboxtest.Cluster(t), bin)
	if err != nil {
		t.Fatal(err)
	}
	o.Subnet = subnet
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := runtime.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, rt.LogDir())
		}
		if err := rt.Stop(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat("/sys/class/net/msbr" + strings.TrimPrefix(strings.Split(rt.PodCIDR(), ".")[2], "")); err == nil {
			t.Errorf("bridge of %s still exists after Stop", rt.PodCIDR())
		}
	})
	return rt
}

func dumpLogs(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		t.Logf("--- %s\n%s", filepath.Base(f), b)
	}
}

func namespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "runtime-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	return ns.Name
}

func samplePod(role string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: role + "-"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: role, Image: "mesh.dev/mesh-sample:test",
			Args:  []string{"--role=$(ROLE)", "--version=v3", "--ratings-url=http://127.0.0.1:1"},
			Env:   []corev1.EnvVar{{Name: "ROLE", Value: role}, {Name: "MY_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("http")}},
				PeriodSeconds: 1},
		}}},
	}
}

// waitPod polls until cond holds for the pod and returns it.
func waitPod(t *testing.T, cs kubernetes.Interface, ns, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = p
		if cond(p) {
			return p
		}
	}
	st, _ := json.MarshalIndent(last.Status, "", "  ")
	t.Fatalf("pod %s/%s: %s not reached in 60 s; node %q, status:\n%s", ns, name, what, last.Spec.NodeName, st)
	return nil
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// processesOf lists the pids whose environment names the pod as host.
func processesOf(pod string) []string {
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err == nil && bytes.Contains(append([]byte{0}, env...), []byte("\x00HOSTNAME="+pod+"\x00")) {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

func TestPodRunsAsLocalProcessInItsNamespace(t *testing.T) {
	rt, cs := startRuntime(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, samplePod("reviews"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.NodeName != rt.NodeName() {
		t.Fatalf("pod with a local image bound to %q, want the runtime's node %q", pod.Spec.NodeName, rt.NodeName())
	}
	pod = waitPod(t, cs, ns, pod.Name, "Running and Ready", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && ready(p) })
	if !strings.HasPrefix(pod.Status.PodIP, strings.TrimSuffix(rt.PodCIDR(), "0/24")) {
		t.Fatalf("pod IP %q is not in the runtime's range %s", pod.Status.PodIP, rt.PodCIDR())
	}
	if cst := pod.Status.ContainerStatuses; len(cst) != 1 || cst[0].State.Running == nil || !cst[0].Ready {
		t.Fatalf("container status: %+v", cst)
	}

	// The host reaches the pod's own address; the app answers with the pod's name as host name.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get("http://" + pod.Status.PodIP + ":9080/reviews/0")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct {
		Version string `json:"version"`
		Pod     string `json:"podname"`
		Reviews []struct {
			Rating struct{ Error string } `json:"rating"`
		} `json:"reviews"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("answer from %s: %v\n%s", pod.Status.PodIP, err, body)
	}
	if got.Version != "v3" || got.Pod != pod.Name || len(got.Reviews) == 0 || got.Reviews[0].Rating.Error == "" {
		t.Fatalf("answer from the pod = %s; want reviews v3 from host %s with an unreachable ratings service", body, pod.Name)
	}

	// The process sees its address through the downward API and lives in the pod's namespace.
	netns := rt.NetNS(pod.UID)
	if netns == "" {
		t.Fatal("the runtime reports no namespace for a running pod")
	}
	pids := processesOf(pod.Name)
	if len(pids) != 1 {
		t.Fatalf("processes of the pod: %v, want one", pids)
	}
	env, _ := os.ReadFile("/proc/" + pids[0] + "/environ")
	if !bytes.Contains(append([]byte{0}, env...), []byte("\x00MY_IP="+pod.Status.PodIP+"\x00")) {
		t.Errorf("MY_IP not set to the pod IP in the process environment")
	}
	out, err := exec.Command("ip", "netns", "identify", pids[0]).Output()
	if err != nil || strings.TrimSpace(string(out)) != netns {
		t.Errorf("process %s is in namespace %q (%v), want %q", pids[0], strings.TrimSpace(string(out)), err, netns)
	}

	// Deleting the pod stops the process and removes the namespace, and the pod object goes away.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not gone 30 s after deletion (last error %v)", err)
		}
	}
	if pids := processesOf(pod.Name); len(pids) != 0 {
		t.Errorf("processes of the deleted pod still running: %v", pids)
	}
	if _, err := os.Stat("/run/netns/" + netns); !os.IsNotExist(err) {
		t.Errorf("namespace %s still exists after the pod was deleted (%v)", netns, err)
	}
}

func TestOtherImagesStayWithKwok(t *testing.T) {
	rt, cs := startRuntime(t)
	ns := namespace(t, cs)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "nginx-"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "docker.io/library/nginx:1.27"}}}}
	p, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, cs, ns, p.Name, "Running (simulated)", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if p.Spec.NodeName == rt.NodeName() || !strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
		t.Errorf("pod with a foreign image runs on %q, want a kwok node", p.Spec.NodeName)
	}
}

// TestContainerRestartsAfterExit: the process named by the container's
// containerID is killed; the pod reports the container down and not Ready,
// then restarted (restartCount, lastState with the old process) in the same
// network namespace with the same IP, answering again.
func TestContainerRestartsAfterExit(t *testing.T) {
	_, cs := startRuntime(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, samplePod("details"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod = waitPod(t, cs, ns, pod.Name, "Ready", ready)
	// A condition of a type the kubelet does not own (a readiness gate's,
	// the fallback agent's) survives its status updates, as on a kubelet.
	foreign := []byte(`{"status":{"conditions":[{"type":"example.com/Other","status":"True","reason":"SetByTest"}]}}`)
	if pod, err = cs.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.StrategicMergePatchType, foreign, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	oldID := pod.Status.ContainerStatuses[0].ContainerID
	pid, err := runtime.PIDFromContainerID(oldID)
	if err != nil {
		t.Fatal(err)
	}
	if pids := processesOf(pod.Name); len(pids) != 1 || pids[0] != strconv.Itoa(pid) {
		t.Fatalf("containerID %s, but the pod's processes are %v", oldID, pids)
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + pod.Name, ResourceVersion: pod.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Every status the runtime sends is seen here, so the down state cannot slip by between polls.
	sawDown := false
	timeout := time.After(60 * time.Second)
	for !ready(pod) || pod.Status.ContainerStatuses[0].RestartCount == 0 {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed before the container came back")
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				t.Fatalf("watch event %s: %v", ev.Type, ev.Object)
			}
			pod = p
			st := pod.Status.ContainerStatuses[0]
			if st.State.Running == nil {
				sawDown = true
				if st.Ready || ready(pod) || st.ContainerID != "" {
					t.Errorf("container down (%+v) but ready=%v, pod Ready=%v, containerID=%q", st.State, st.Ready, ready(pod), st.ContainerID)
				}
			}
		case <-timeout:
			st, _ := json.MarshalIndent(pod.Status, "", "  ")
			t.Fatalf("not restarted and Ready in 60 s:\n%s", st)
		}
	}
	if !sawDown {
		t.Error("no status showed the container down between the kill and the restart")
	}
	kept := false
	for _, c := range pod.Status.Conditions {
		kept = kept || c.Type == "example.com/Other" && c.Reason == "SetByTest"
	}
	if !kept {
		t.Errorf("conditions after the restart %+v: the example.com/Other condition set by another writer is gone", pod.Status.Conditions)
	}
	st := pod.Status.ContainerStatuses[0]
	if st.RestartCount != 1 {
		t.Errorf("restartCount = %d, want 1", st.RestartCount)
	}
	if lt := st.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 137 || lt.ContainerID != oldID {
		t.Errorf("last termination = %+v, want exit code 137 (SIGKILL) of %s", lt, oldID)
	}
	newPID, err := runtime.PIDFromContainerID(st.ContainerID)
	if err != nil || newPID == pid {
		t.Errorf("containerID after the restart = %q (%v), want the new process, not %d", st.ContainerID, err, pid)
	}
	if pids := processesOf(pod.Name); len(pids) != 1 || pids[0] != strconv.Itoa(newPID) {
		t.Errorf("containerID %s after the restart, but the pod's processes are %v", st.ContainerID, pids)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://%s:9080/details/0", pod.Status.PodIP))
	if err != nil {
		t.Fatalf("restarted container does not answer at the same pod IP %s: %v", pod.Status.PodIP, err)
	}
	resp.Body.Close()
}

func TestPIDFromContainerID(t *testing.T) {
	if pid, err := runtime.PIDFromContainerID("sandbox://4242"); err != nil || pid != 4242 {
		t.Errorf("sandbox://4242 = %d, %v", pid, err)
	}
	for _, bad := range []string{"", "sandbox://", "sandbox://0", "sandbox://-3", "containerd://4242", "sandbox://12x"} {
		if _, err := runtime.PIDFromContainerID(bad); err == nil || !strings.Contains(err.Error(), "sandbox://<pid>") {
			t.Errorf("%q: err = %v, want one naming the sandbox://<pid> form", bad, err)
		}
	}
}

// TestServicesTokensAndAPIServerFromPods: a pod reaches another through its
// Service name (hosts file and ClusterIP rules), gets a ServiceAccount token
// the API server accepts, and reaches the API server at the kubernetes
// Service address.
func TestServicesTokensAndAPIServerFromPods(t *testing.T) {
	rt, cs := startRuntime(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	details := samplePod("details")
	details.Labels = map[string]string{"app": "details"}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, details, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "details"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "details"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}}}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	page := samplePod("productpage")
	page.Spec.Containers[0].Args = []string{"--role=productpage", "--reviews-url=http://127.0.0.1:1"}
	page, err := cs.CoreV1().Pods(ns).Create(ctx, page, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page = waitPod(t, cs, ns, page.Name, "Ready", ready)

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	var html string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		resp, err := client.Get("http://" + page.Status.PodIP + ":9080/productpage")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			html = string(b)
			if strings.Contains(html, "William Shakespeare") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("product page never showed the details fetched through http://details:9080 (err %v):\n%s", err, html)
		}
	}
	if !strings.Contains(html, "<title>Simple Bookstore App</title>") {
		t.Errorf("product page lacks its title:\n%s", html)
	}

	// The ServiceAccount token mounted where client-go looks for it is one the API server accepts.
	pids := processesOf(page.Name)
	if len(pids) != 1 {
		t.Fatalf("processes of the pod: %v", pids)
	}
	// Absolute symlinks under /proc/PID/root resolve against our root, so resolve /var/run (often a link to /run) first.
	varRun, _ := filepath.EvalSymlinks("/var/run")
	token, err := os.ReadFile("/proc/" + pids[0] + "/root" + varRun + "/secrets/kubernetes.io/serviceaccount/token")
	if err != nil {
		t.Fatalf("token in the container's mount namespace: %v", err)
	}
	c := sandboxtest.Cluster(t)
	cfg := c.RESTConfig()
	cfg.CertData, cfg.KeyData, cfg.BearerToken = nil, nil, strings.TrimSpace(string(token))
	who, err := kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the pod's token is refused: %v", err)
	}
	if want := "system:serviceaccount:" + ns + ":default"; who.Status.UserInfo.Username != want {
		t.Errorf("token identifies %q, want %q", who.Status.UserInfo.Username, want)
	}

	// From inside the pod's namespace, https://198.19.0.1 is the API server.
	self, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", rt.NetNS(page.UID), self)
	cmd.Env = []string{"RUNTIME_TEST_HELPER=apiserver", "KUBERNETES_SERVICE_HOST=198.19.0.1"}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"gitVersion"`) {
		t.Errorf("API server from the pod's namespace: %v\n%s", err, out)
	}
}

// TestVolumesOverTheBinaryFolder runs a pod whose emptyDirs cover the folder
// holding the container's binary and that folder's parent, as Bookinfo's
// reviews does with /tmp when the checkout is under /tmp (#25): the binary
// is opened on the host before the volumes are mounted, so it still runs,
// as root and as another user, while its folder looks empty from inside.
func TestVolumesOverTheBinaryFolder(t *testing.T) {
	_, cs, bin := startRuntimeBin(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	pod := samplePod("details")
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "over-bin", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "over-parent", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	mounts := []corev1.VolumeMount{{Name: "over-parent", MountPath: filepath.Dir(bin)}, {Name: "over-bin", MountPath: bin}}
	pod.Spec.Containers[0].VolumeMounts = mounts
	second := *pod.Spec.Containers[0].DeepCopy()
	second.Name, second.Args = "as-user", []string{"--role=ratings", "--listen=:9081"}
	second.ReadinessProbe, second.Ports = nil, nil
	second.SecurityContext = &corev1.SecurityContext{RunAsUser: ptrTo(int64(1234))}
	pod.Spec.Containers = append(pod.Spec.Containers, second)
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod = waitPod(t, cs, ns, pod.Name, "both containers running and Ready", func(p *corev1.Pod) bool {
		return ready(p) && len(p.Status.ContainerStatuses) == 2 && p.Status.ContainerStatuses[1].State.Running != nil
	})
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for _, u := range []string{":9080/details/0", ":9081/ratings/0"} {
		resp, err := client.Get("http://" + pod.Status.PodIP + u)
		if err != nil {
			t.Fatalf("container behind the volumes does not answer: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", u, resp.Status)
		}
	}
	for _, st := range pod.Status.ContainerStatuses {
		pid, err := runtime.PIDFromContainerID(st.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		// Inside, the binary's folder is the (empty) volume.
		out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-m", "--", "ls", "-A", bin).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("container %s: %s seen from inside = %q (%v), want the empty volume", st.Name, bin, out, err)
		}
		// ps shows the binary's path as argv[0], as before.
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); argv0 != filepath.Join(bin, "mesh-sample") {
			t.Errorf("container %s: argv[0] = %q, want %q", st.Name, argv0, filepath.Join(bin, "mesh-sample"))
		}
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		wantUID := "0"
		if st.Name == "as-user" {
			wantUID = "1234"
		}
		if !strings.Contains(string(status), "\nUid:\t"+wantUID+"\t") {
			t.Errorf("container %s does not run as uid %s", st.Name, wantUID)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestANewRuntimeOnTheNodeReportsItsOwnStatus: a runtime that starts after
// another stopped takes the same free subnet, so the same node name, and
// runs the pods left bound to that node again, with addresses of its own
// (e2e tests share one sandbox, so every test's runtime does this with the
// pods of the tests before it). The pod's status is then the new one: one
// podIP, the new process's containerID, Ready once the new process
// answers. A status patch built as a diff from nothing merged the new
// address into the old podIPs (two IPv4 addresses, refused by the API
// server), so the pod kept the old runtime's status: Ready on an address
// another pod now holds, and Services sent its traffic there.
func TestANewRuntimeOnTheNodeReportsItsOwnStatus(t *testing.T) {
	first, cs, bin := startRuntimeBin(t)
	ns := namespace(t, cs)
	ctx := context.Background()
	// The filler takes the first runtime's next address, so the pod's
	// address there differs from the one the second runtime gives it,
	// whether addresses start again at .2 or go on round-robin.
	filler, err := cs.CoreV1().Pods(ns).Create(ctx, samplePod("details"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, ns, filler.Name, "Ready", ready)
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, samplePod("details"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod = waitPod(t, cs, ns, pod.Name, "Ready", ready)
	oldIP, oldID := pod.Status.PodIP, pod.Status.ContainerStatuses[0].ContainerID
	if err := cs.CoreV1().Pods(ns).Delete(ctx, filler.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := cs.CoreV1().Pods(ns).Get(ctx, filler.Name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the filler pod was not deleted in 60 s")
		}
	}
	node := first.NodeName()
	// The second runtime asks for the first one's subnet, as a kubelet
	// restarted on its node keeps the name: the lowest free subnet may be
	// another's that a runtime of a test running beside this one freed.
	var subnet int
	if _, err := fmt.Sscanf(strings.Split(first.PodCIDR(), ".")[2], "%d", &subnet); err != nil {
		t.Fatalf("pod CIDR %s: %v", first.PodCIDR(), err)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	second := startRuntimeOn(t, bin, subnet)
	if second.NodeName() != node {
		t.Fatalf("the second runtime is node %s, the first was %s", second.NodeName(), node)
	}
	pod = waitPod(t, cs, ns, pod.Name, "Ready with the second runtime's process and address", func(p *corev1.Pod) bool {
		return ready(p) && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].ContainerID != oldID &&
			p.Status.ContainerStatuses[0].Ready
	})
	if len(pod.Status.PodIPs) != 1 || pod.Status.PodIPs[0].IP != pod.Status.PodIP || pod.Status.PodIP == oldIP {
		t.Fatalf("podIP %s, podIPs %v (the first runtime's address was %s): want the second runtime's one address", pod.Status.PodIP, pod.Status.PodIPs, oldIP)
	}
	// The address in the status is the one the new process answers on.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + pod.Status.PodIP + ":9080/health")
	if err != nil {
		t.Fatalf("the pod's status address %s: %v", pod.Status.PodIP, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s:9080/health: %s", pod.Status.PodIP, resp.Status)
	}
}
