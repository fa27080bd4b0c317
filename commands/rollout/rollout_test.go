package rollout

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/pilot/debug"
	"mesh.dev/mesh/internal/pilot/model"
	"mesh.dev/mesh/internal/pilot/pilottest"
	"mesh.dev/mesh/internal/pilot/rollout"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx := cli.NewContext(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd := NewCommand(ctx)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

const vs = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
  annotations: {rollout.mesh.io/stages: "50,100", rollout.mesh.io/interval: 60s}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: %s}}]
`

// mesh rollout status and history read a real Manager through pilot's
// debug endpoint.
func TestStatusAndHistory(t *testing.T) {
	w := pilottest.NewWorld("default")
	if err := w.AddFile(filepath.Join("../../../shared/fixtures/bookinfo", "bookinfo.yaml")); err != nil {
		t.Fatal(err)
	}
	clock := rollout.NewFakeClock(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	m := &rollout.Manager{Clock: clock, Push: func(*model.Snapshot, model.Change, rollout.Plan) map[string]rollout.Counts {
		return map[string]rollout.Counts{"VirtualService/default/reviews": {Affected: 6, Staged: []string{"a", "b", "c"}}}
	}}
	for i, subset := range []string{"v1", "v2"} {
		if err := w.AddYAML([]byte(strings.Replace(vs, "%s", subset, 1))); err != nil {
			t.Fatal(err)
		}
		m.Offer(model.Build(uint64(i+1), w.Input()), model.Change{Full: true})
	}
	web := httptest.NewServer(debug.Rollouts(m))
	defer web.Close()
	addr := strings.TrimPrefix(web.URL, "http://")

	out, err := run(t, "status", "-A", "--pilot-address", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"VirtualService/default/reviews", "Progressing", "1/2 (50%)", "3 of 6", "2026-12-04T12:01:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, "history", "VirtualService/default/reviews", "--pilot-address", addr, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"reason": "Started"`) {
		t.Errorf("history lacks the start:\n%s", out)
	}
	if _, err := run(t, "status", "Nonsense/x", "--pilot-address", addr); err == nil || !strings.Contains(err.Error(), "not a kind of config resource") {
		t.Errorf("bad kind: %v", err)
	}
}
