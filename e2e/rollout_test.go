package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/pilot/rollout"
	"mesh.dev/mesh/internal/pilot/status"
	"mesh.dev/mesh/internal/syncstatus"
)

// rolloutID is the staged resource, as pilot names it.
const rolloutID = "VirtualService/bookinfo/reviews"

// stagedReviews is reviews' VirtualService sending every call to subset,
// staged in stages of interval, with the 5xx gate when max5xx is set.
func stagedReviews(subset, stages, interval, max5xx string) []byte {
	s := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  annotations:
    %s: %q
    %s: %q
`, rollout.AnnotationStages, stages, rollout.AnnotationInterval, interval)
	if max5xx != "" {
		s += fmt.Sprintf("    %s: %q\n", rollout.AnnotationMax5xxRatio, max5xx)
	}
	return []byte(s + `spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: ` + subset + "}\n")
}

// reviewsWithEmptySubset is the demo's reviews DestinationRule with a
// subset v4 that no pod carries: a route to it has no endpoints.
const reviewsWithEmptySubset = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
  - {name: v4, labels: {version: v4}}
`

// rolloutWorld is Bookinfo on the mesh seen as the rollout of reviews'
// VirtualService sees it: every Bookinfo sidecar holds a route to
// reviews (no Sidecar scopes it), so each is a proxy the change affects;
// the test calls reviews from inside each pod, through its sidecar, and
// the version that answers is the route that proxy holds.
type rolloutWorld struct {
	e        *env
	sidecars []*corev1.Pod // by name
	reviews  string        // reviews' ClusterIP:9080, which the capture sends to the outbound listener
	pilot    string        // pilot's debug address (its pod's, kept across a container restart)
	proxies  []string      // every proxy pilot should list: the sidecars and the ingress gateway
	istio    istioclient.Interface
}

func (e *env) rolloutWorld() *rolloutWorld {
	e.t.Helper()
	ctx := context.Background()
	w := &rolloutWorld{e: e, istio: istioclient.NewForConfigOrDie(e.c.RESTConfig()), proxies: e.meshProxies()}
	pods, err := e.cs.CoreV1().Pods("bookinfo").List(ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			w.sidecars = append(w.sidecars, &pods.Items[i])
		}
	}
	sort.Slice(w.sidecars, func(i, j int) bool { return w.sidecars[i].Name < w.sidecars[j].Name })
	svc, err := e.cs.CoreV1().Services("bookinfo").Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	w.reviews = net.JoinHostPort(svc.Spec.ClusterIP, "9080")
	w.pilot = net.JoinHostPort(e.pod("mesh-system", "app=mesh-pilot").Status.PodIP, strconv.Itoa(syncstatus.DebugPort))
	return w
}

// call is one request to reviews from a pod, through its sidecar.
type call struct {
	pod     string
	at      time.Time
	code    int    // 0: no HTTP answer
	version string // the reviews version that answered a 200
	err     error
}

func (c call) String() string {
	if c.err != nil {
		return fmt.Sprintf("%s: %v", c.pod, c.err)
	}
	if c.code != http.StatusOK {
		return fmt.Sprintf("%s: %d", c.pod, c.code)
	}
	return c.pod + ": reviews-" + c.version
}

// callReviews asks reviews for a review from inside pod p.
func (w *rolloutWorld) callReviews(p *corev1.Pod) call {
	c := call{pod: p.Name, at: time.Now()}
	resp, err := w.e.fromPod(p, w.reviews).Get("http://reviews:9080/reviews/0")
	if err != nil {
		c.err = err
		return c
	}
	defer resp.Body.Close()
	c.code = resp.StatusCode
	b, _ := io.ReadAll(resp.Body)
	if c.code == http.StatusOK {
		var body struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			c.err = fmt.Errorf("reviews answered %q: %v", b, err)
		}
		c.version = body.Version
	}
	return c
}

// callers is the sidecars whose calls to reviews go through the route
// their proxy holds: all but the reviews pods of the versions given.
// Those are left out because a pod's call through its own sidecar back
// to itself fails on the sandbox (the capture has no rule for the
// proxy's connection to its own pod address: 503 UF), whatever the route.
func (w *rolloutWorld) callers(notVersions ...string) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range w.sidecars {
		if p.Labels["app"] != "reviews" || !slices.Contains(notVersions, p.Labels["version"]) {
			out = append(out, p)
		}
	}
	return out
}

// versions is one call from each of pods: pod name to the call.
func (w *rolloutWorld) versions(pods []*corev1.Pod) map[string]call {
	out := map[string]call{}
	for _, p := range pods {
		out[p.Name] = w.callReviews(p)
	}
	return out
}

// reviewsCluster is the cluster name of a reviews subset, as the route
// to it names it.
var reviewsCluster = regexp.MustCompile(`outbound\|9080\|([^|"]*)\|reviews\.bookinfo\.svc\.cluster\.local`)

// routedSubset is the reviews subset the route table 9080 of pod's
// proxy sends to, read from the proxy's config dump as a user does
// (mesh proxy-config route POD.bookinfo --name 9080 -o json).
func (w *rolloutWorld) routedSubset(p *corev1.Pod) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(w.e.bin, "mesh"), "proxy-config", "route", p.Name+".bookinfo",
		"--name", "9080", "-o", "json", "--kubeconfig", w.e.c.KubeconfigPath()).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mesh proxy-config route %s.bookinfo: %v: %s", p.Name, err, out)
	}
	seen := map[string]bool{}
	for _, m := range reviewsCluster.FindAllSubmatch(out, -1) {
		seen[string(m[1])] = true
	}
	if len(seen) != 1 {
		return "", fmt.Errorf("%s's route table 9080 names reviews subsets %v, want one", p.Name, seen)
	}
	for s := range seen {
		return s, nil
	}
	return "", nil
}

// status is pilot's rollout of reviews' VirtualService, nil when pilot
// does not answer or has none.
func (w *rolloutWorld) status() *rollout.Status {
	c, err := syncstatus.New(w.pilot)
	if err != nil {
		w.e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sts, err := c.Rollouts(ctx)
	if err != nil {
		return nil
	}
	for i := range sts {
		if sts[i].ID == rolloutID {
			return &sts[i]
		}
	}
	return nil
}

// waitStatus waits until pilot reports a rollout of reviews for which ok holds.
func (w *rolloutWorld) waitStatus(what string, timeout time.Duration, ok func(*rollout.Status) bool) *rollout.Status {
	w.e.t.Helper()
	var st *rollout.Status
	w.e.waitFor(what, timeout, func() (bool, string) {
		st = w.status()
		if st == nil {
			return false, "no rollout of " + rolloutID + " reported"
		}
		return ok(st), fmt.Sprintf("%+v", *st)
	})
	return st
}

// history is the steps the pilot process now running recorded.
func (w *rolloutWorld) history() []rollout.Event {
	w.e.t.Helper()
	h, err := w.tryHistory()
	if err != nil {
		w.e.t.Fatalf("rollout history: %v", err)
	}
	return h
}

func (w *rolloutWorld) tryHistory() ([]rollout.Event, error) {
	c, err := syncstatus.New(w.pilot)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.RolloutHistory(ctx, rolloutID)
}

func (w *rolloutWorld) isSidecar(pod string) bool {
	for _, p := range w.sidecars {
		if p.Name == pod {
			return true
		}
	}
	return false
}

// generation is reviews' VirtualService's metadata.generation.
func (w *rolloutWorld) generation() int64 {
	w.e.t.Helper()
	vs, err := w.istio.NetworkingV1().VirtualServices("bookinfo").Get(context.Background(), "reviews", metav1.GetOptions{})
	if err != nil {
		w.e.t.Fatal(err)
	}
	return vs.Generation
}

// waitCondition waits until the VirtualService's status has the rollout
// condition with status and reason, its message containing each of
// parts, and returns the message.
func (w *rolloutWorld) waitCondition(status, reason string, parts ...string) string {
	w.e.t.Helper()
	var msg string
	w.e.waitFor(fmt.Sprintf("the VirtualService's %s condition %s/%s", rolloutCondition, status, reason), time.Minute, func() (bool, string) {
		vs, err := w.istio.NetworkingV1().VirtualServices("bookinfo").Get(context.Background(), "reviews", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range vs.Status.Conditions {
			if c.Type != rolloutCondition {
				continue
			}
			msg = c.Message
			ok := c.Status == status && c.Reason == reason
			for _, p := range parts {
				ok = ok && strings.Contains(c.Message, p)
			}
			return ok, fmt.Sprintf("%s/%s %q", c.Status, c.Reason, c.Message)
		}
		return false, "no such condition"
	})
	return msg
}

const rolloutCondition = status.RolloutCondition

// stagedPods is the set of sidecar pods among the proxies st gives the candidate.
func stagedPods(st *rollout.Status) map[string]bool {
	out := map[string]bool{}
	for _, id := range st.Staged {
		name, _, _ := strings.Cut(syncstatus.NodeName(id), ".")
		out[name] = true
	}
	return out
}

// splitIsTheStage waits until, with every proxy SYNCED with pilot (so
// what each holds is what pilot last sent it), every sidecar's route to
// reviews in its config dump names candidate exactly on the pods st
// stages and released on the others, and the calls from the callers are
// answered by those versions, twice in a row. A candidate sent to every
// proxy at once fails it.
func (w *rolloutWorld) splitIsTheStage(what string, st *rollout.Status, candidate, released string) {
	w.e.t.Helper()
	staged := stagedPods(st)
	want := func(pod string) string {
		if staged[pod] {
			return candidate
		}
		return released
	}
	streak := 0
	w.e.waitFor(what, 90*time.Second, func() (bool, string) {
		if ok, why := allSynced(w.pilot, w.proxies); !ok {
			streak = 0
			return false, "not every proxy SYNCED: " + why
		}
		var wrong []string
		for _, p := range w.sidecars {
			if got, err := w.routedSubset(p); err != nil || got != want(p.Name) {
				wrong = append(wrong, fmt.Sprintf("%s routes to %q (%v), want %s", p.Name, got, err, want(p.Name)))
			}
		}
		for pod, c := range w.versions(w.callers(candidate, released)) {
			if c.err != nil || c.code != http.StatusOK || c.version != want(pod) {
				wrong = append(wrong, fmt.Sprintf("%s (want reviews-%s)", c, want(pod)))
			}
		}
		if len(wrong) > 0 {
			streak = 0
			return false, fmt.Sprintf("staged %v; %v", st.Staged, wrong)
		}
		streak++
		return streak >= 2, fmt.Sprintf("%d rounds in a row", streak)
	})
}

// everyoneOn waits until every sidecar's route to reviews names version
// and the callers' calls are answered by it, n rounds of calls in a row.
func (w *rolloutWorld) everyoneOn(what, version string, n int) {
	w.e.t.Helper()
	w.e.waitFor(what+": every proxy's route", 2*time.Minute, func() (bool, string) {
		for _, p := range w.sidecars {
			if got, err := w.routedSubset(p); err != nil || got != version {
				return false, fmt.Sprintf("%s routes to %q (%v)", p.Name, got, err)
			}
		}
		return true, ""
	})
	streak := 0
	w.e.waitFor(what+": the calls", 2*time.Minute, func() (bool, string) {
		for _, c := range w.versions(w.callers(version)) {
			if c.err != nil || c.code != http.StatusOK || c.version != version {
				streak = 0
				return false, c.String()
			}
		}
		streak++
		return streak >= n, fmt.Sprintf("%d rounds in a row", streak)
	})
}

// steps is the history's step names for revision rev, in order.
func steps(h []rollout.Event, rev uint64) []rollout.Event {
	var out []rollout.Event
	for _, ev := range h {
		if ev.Revision == rev {
			out = append(out, ev)
		}
	}
	return out
}

func reasons(evs []rollout.Event) string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Reason)
	}
	return strings.Join(out, " ")
}

// traffic calls reviews from every sidecar in turn, a call every 50 ms,
// until stopped, and records each call.
type traffic struct {
	mu    sync.Mutex
	calls []call
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (w *rolloutWorld) startTraffic(pods []*corev1.Pod) *traffic {
	tr := &traffic{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for i := 0; ; i++ {
			select {
			case <-tr.quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
			c := w.callReviews(pods[i%len(pods)])
			tr.mu.Lock()
			tr.calls = append(tr.calls, c)
			tr.mu.Unlock()
		}
	}()
	return tr
}

func (tr *traffic) stop() { tr.once.Do(func() { close(tr.quit); <-tr.done }) }

// between is the calls started in [from, to).
func (tr *traffic) between(from, to time.Time) []call {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []call
	for _, c := range tr.calls {
		if !c.at.Before(from) && c.at.Before(to) {
			out = append(out, c)
		}
	}
	return out
}

// TestStagedRolloutWithRealProxies: rollouts of reviews' VirtualService
// over Bookinfo's mesh-proxy sidecars on the sandbox runtime, seen by
// requests each sidecar's pod sends to reviews.
//
// A good change (reviews-v1 to v3, stages 50,100, a 60 s soak) reaches
// exactly the proxies pilot stages, half of the six it affects, while
// the others still route to v1 (every proxy SYNCED, so a change sent to
// everyone at once fails this); pilot's process killed mid-stage comes
// back at the same stage, soaked from the same start, serving the same
// proxies; after the soak every proxy routes to v3 and the resource's
// status says Released, its history Promoted.
//
// A bad change under steady traffic from every sidecar (a route to a
// reviews subset with no endpoints, max-5xx-ratio 0.1, a 10 min soak) is
// rolled back by pilot itself within its first stage: the history has
// RolledBack and no step on, long before the soak would have ended; the
// status says RolledBack with the figures; only the staged proxies'
// calls failed; and every call succeeds afterwards.
func TestStagedRolloutWithRealProxies(t *testing.T) {
	demoEnabled(t)
	e := setup(t)
	e.bookinfoOnMesh()
	w := e.rolloutWorld()
	if len(w.sidecars) < 4 {
		t.Fatalf("%d Bookinfo pods, want at least 4 to stage half of them", len(w.sidecars))
	}
	t.Cleanup(func() {
		// Bookinfo as the demo leaves it, for the tests after this one.
		e.apply("bookinfo", e.fixture("destination-rule-all.yaml"))
		e.apply("bookinfo", e.fixture("virtual-service-all-v1.yaml"))
	})
	w.everyoneOn("every sidecar routes reviews to v1 before the change", "v1", 3)
	// An Event's timestamps are kept to the second: from the start of this one.
	start := metav1.NewTime(time.Now().Truncate(time.Second))

	// The good change.
	e.apply("bookinfo", stagedReviews("v3", "50,100", "60s", ""))
	gen := w.generation()
	st := w.waitStatus("stage 1 of the change to v3", time.Minute, func(s *rollout.Status) bool {
		return s.Generation == gen && s.Phase == rollout.Progressing && s.Stage == 1 && s.Affected == len(w.sidecars) && len(s.Staged) > 0
	})
	if want := (len(w.sidecars) + 1) / 2; len(st.Staged) != want {
		t.Fatalf("stage 1 (50%%) staged %d of the %d affected proxies, want %d: %v", len(st.Staged), st.Affected, want, st.Staged)
	}
	for pod := range stagedPods(st) {
		if !w.isSidecar(pod) {
			t.Fatalf("staged proxy %s is not a Bookinfo pod: %v", pod, st.Staged)
		}
	}
	w.splitIsTheStage("stage 1: reviews-v3 from the staged proxies only", st, "v3", "v1")
	if now := w.status(); now == nil || now.Generation != gen || now.Stage != 1 {
		t.Fatalf("the stage ended before its share could be checked (%+v): the 60 s soak is too short for this machine", now)
	}
	w.waitCondition("False", "Progressing", fmt.Sprintf("stage 1 of 2 (50%%): on %d of the %d proxies", len(st.Staged), st.Affected))
	if out, err := e.mesh(time.Minute, "rollout", "status", "-n", "bookinfo", "VirtualService/reviews"); err != nil ||
		!strings.Contains(out, "Progressing") || !strings.Contains(out, fmt.Sprintf("%d of %d", len(st.Staged), st.Affected)) {
		t.Fatalf("mesh rollout status: %v, want Progressing with %d of %d:\n%s", err, len(st.Staged), st.Affected, out)
	}

	// Pilot killed mid-stage.
	pilot := e.pod("mesh-system", "app=mesh-pilot")
	before := e.kill(pilot, "discovery")
	e.waitFor("pilot restarted and Ready", 2*time.Minute, func() (bool, string) {
		p := e.pod("mesh-system", "app=mesh-pilot")
		c := e.containerStatus(p, "discovery")
		return c.RestartCount > before && c.State.Running != nil && podReady(p), fmt.Sprintf("restarts=%d state=%+v ready=%v", c.RestartCount, c.State, podReady(p))
	})
	var resumed rollout.Event
	e.waitFor("the restarted pilot resuming the rollout", time.Minute, func() (bool, string) {
		h, err := w.tryHistory()
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range h {
			if ev.Reason == "Resumed" {
				resumed = ev
				return true, ""
			}
		}
		return false, reasons(h)
	})
	if since := st.Since.UTC().Format(time.RFC3339); resumed.Stage != 1 || !strings.Contains(resumed.Message, "stage 1 of 2, soaked since "+since) {
		t.Fatalf("the restarted pilot %+v, want it to resume stage 1 soaked since %s", resumed, since)
	}
	if now := w.status(); now != nil && now.Phase == rollout.Progressing {
		if now.Stage != 1 || now.NextStep == nil || !now.NextStep.Equal(*st.NextStep) {
			t.Fatalf("after the restart: %+v, want stage 1 with its soak ending at %v as before", *now, st.NextStep)
		}
		// Which proxies are staged is stable: the restarted pilot stages the same ones.
		again := w.waitStatus("the reconnected proxies staged again", time.Minute, func(s *rollout.Status) bool {
			return s.Phase != rollout.Progressing || len(s.Staged) == len(st.Staged) && s.Affected == st.Affected
		})
		if again.Phase == rollout.Progressing {
			if fmt.Sprint(stagedPods(again)) != fmt.Sprint(stagedPods(st)) {
				t.Fatalf("the restarted pilot stages %v, before the restart %v", again.Staged, st.Staged)
			}
		}
	} else {
		t.Logf("pilot came back after stage 1's soak ended (%v): it resumed and stepped on at once", st.NextStep)
	}

	w.waitStatus("the change released after its soak", 2*time.Minute, func(s *rollout.Status) bool {
		return s.Generation == gen && s.Phase == rollout.Released
	})
	w.everyoneOn("every sidecar routes reviews to v3 once released", "v3", 3)
	w.waitCondition("True", "Released", fmt.Sprintf("generation %d is released to every proxy", gen))
	if h := reasons(steps(w.history(), resumed.Revision)); !strings.HasSuffix(h, "Resumed Promoted") {
		t.Fatalf("the restarted pilot's steps %q, want Resumed then Promoted (not stepped again)", h)
	}

	// The bad change: a route to a subset with no endpoints, under traffic.
	e.apply("bookinfo", []byte(reviewsWithEmptySubset))
	e.waitFor("every proxy SYNCED with subset v4", time.Minute, func() (bool, string) { return allSynced(w.pilot, w.proxies) })
	tr := w.startTraffic(w.callers("v3"))
	defer tr.stop()
	applied := time.Now()
	// A 10 min soak: rolled back within the 2 min the wait below allows,
	// so by the gate during the first stage, not at its end.
	e.apply("bookinfo", stagedReviews("v4", "50,100", "10m", "0.1"))
	bad := w.generation()
	st = w.waitStatus("stage 1 of the change to v4", time.Minute, func(s *rollout.Status) bool {
		return s.Generation == bad && (s.Phase == rollout.Progressing && len(s.Staged) > 0 || s.Phase == rollout.RolledBack)
	})
	if st.Phase != rollout.Progressing {
		t.Fatalf("the change to v4 was %s before pilot showed its stage: %s", st.Phase, st.Reason)
	}
	staged := stagedPods(st)
	rb := w.waitStatus("the change to v4 rolled back by pilot", 2*time.Minute, func(s *rollout.Status) bool {
		return s.Generation == bad && s.Phase != rollout.Progressing
	})
	rolledBack := time.Now()
	if rb.Phase != rollout.RolledBack || !strings.Contains(rb.Reason, rollout.AnnotationMax5xxRatio) {
		t.Fatalf("the change to v4 ended %s (%s), want RolledBack by the %s gate", rb.Phase, rb.Reason, rollout.AnnotationMax5xxRatio)
	}
	evs := steps(w.history(), rb.Revision)
	if got := reasons(evs); got != "Started RolledBack" {
		t.Fatalf("the change to v4's steps %q, want Started RolledBack (rolled back in its first stage)", got)
	}
	msg := w.waitCondition("False", "RolledBack", rollout.AnnotationMax5xxRatio, "requests on the staged proxies failed")
	t.Logf("rolled back %v after the change: %s", rolledBack.Sub(applied).Round(time.Second), msg)

	// Only the staged proxies' calls failed; the others kept v3.
	var failed []string
	for _, c := range tr.between(applied, rolledBack) {
		if c.err != nil || c.code != http.StatusOK || c.version != "v3" {
			failed = append(failed, c.String())
			if !staged[c.pod] {
				t.Errorf("a proxy not staged failed during the bad stage: %s (staged %v)", c, st.Staged)
			}
		}
	}
	if len(failed) == 0 {
		t.Fatalf("no call failed during the bad stage: the staged proxies %v never got the route to v4", st.Staged)
	}
	t.Logf("%d calls failed during the bad stage, all from the staged proxies: %v", len(failed), failed[:min(len(failed), 10)])
	w.everyoneOn("every sidecar served by reviews-v3 after the rollback", "v3", 5)
	tr.stop()

	// One Event per step on the resource, the restarted pilot's Resumed
	// among them (taken before it held the lease its predecessor left).
	want := map[string]int{"Started/Normal": 2, "Resumed/Normal": 1, "Promoted/Normal": 1, "RolledBack/Warning": 1}
	e.waitFor("the rollout's Events", time.Minute, func() (bool, string) {
		l, err := e.cs.CoreV1().Events("bookinfo").List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.kind=VirtualService,involvedObject.name=reviews"})
		if err != nil {
			return false, err.Error()
		}
		got := map[string]int{}
		for _, ev := range l.Items {
			if !ev.LastTimestamp.Before(&start) {
				got[ev.Reason+"/"+ev.Type] += int(max(ev.Count, 1))
			}
		}
		for k, n := range want {
			if got[k] != n {
				return false, fmt.Sprint(got)
			}
		}
		return true, ""
	})
	if out, err := e.mesh(time.Minute, "rollout", "history", "-n", "bookinfo", "VirtualService/reviews"); err != nil ||
		!strings.Contains(out, "Promoted") || !strings.Contains(out, "RolledBack") {
		t.Fatalf("mesh rollout history: %v, want Promoted and RolledBack:\n%s", err, out)
	}
}
