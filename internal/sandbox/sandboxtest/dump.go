package sandboxtest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// RuntimeLog returns a logger for a sandbox runtime a test starts, writing
// to a file of the test's own, and that file's path for Dump: without it a
// pod that never starts or never reports leaves no trace of why.
func RuntimeLog(t testing.TB) (*slog.Logger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sandbox-runtime.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return slog.New(slog.NewTextHandler(f, nil)), path
}

// dumpTail is how much of each log Dump shows: the end is where a failure is.
const dumpTail = 3000

// Dump logs what a failed sandbox test needs to be read from CI's output
// alone: every pod with its phase, address and each container's state (and
// readiness), the Warning Events, the end of the runtime's log and the end
// of each container's log in logDir. Empty paths are skipped.
func Dump(t testing.TB, cs kubernetes.Interface, runtimeLog, logDir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			t.Logf("pod %s/%s node=%s phase=%s ip=%s %v%s", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, containerStates(&p), notReady(&p))
		}
	}
	if evs, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"}); err == nil {
		sort.SliceStable(evs.Items, func(i, j int) bool { return evs.Items[i].LastTimestamp.Before(&evs.Items[j].LastTimestamp) })
		for _, ev := range evs.Items {
			t.Logf("event %s %s/%s %s (x%d): %s", ev.LastTimestamp.Format(time.TimeOnly), ev.Namespace, ev.InvolvedObject.Name, ev.Reason, max(ev.Count, 1), ev.Message)
		}
	}
	if runtimeLog != "" {
		t.Logf("--- sandbox runtime\n%s", tail(runtimeLog))
	}
	if logDir != "" {
		files, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
		for _, f := range files {
			t.Logf("--- %s\n%s", filepath.Base(f), tail(f))
		}
	}
}

func containerStates(p *corev1.Pod) []string {
	var states []string
	for _, s := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		st := "?"
		switch {
		case s.State.Running != nil:
			st = "running"
			if !s.Ready {
				st += " (not ready)"
			}
		case s.State.Waiting != nil:
			st = s.State.Waiting.Reason + ": " + s.State.Waiting.Message
		case s.State.Terminated != nil:
			st = "terminated " + s.State.Terminated.Reason
		}
		states = append(states, s.Name+"="+st)
	}
	return states
}

// notReady says why a pod is not Ready, from its conditions, or nothing.
func notReady(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return ""
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				return ""
			}
			since := ""
			if !c.LastTransitionTime.IsZero() {
				since = " since " + c.LastTransitionTime.Format(time.TimeOnly)
			}
			return " not Ready" + since + ": " + c.Reason + " " + c.Message
		}
	}
	return " no Ready condition (the runtime never reported the pod)"
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > dumpTail {
		b = b[len(b)-dumpTail:]
	}
	return string(b)
}
