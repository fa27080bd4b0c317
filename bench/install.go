package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/spec"
)

// The install benchmark times `mesh install --set profile=demo -y` on a fresh
// sandbox until every component is ready, then a no-op re-install, and sets
// both beside a plain server-side apply of the same objects, one request per
// object in sequence, from the same machine in the same run.
func init() {
	register(Bench{Name: "install", Issue: 4, Run: benchInstall})
}

const installRuns = 5

func benchInstall(env *Env) ([]Row, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sb, err := sandbox.Start(ctx, sandbox.Options{BinDir: filepath.Join(env.Root, "tools", "bin")})
	if err != nil {
		return nil, fmt.Errorf("start the sandbox: %w", err)
	}
	defer sb.Stop()
	kc := sb.KubeconfigPath()
	mesh := env.Bin("mesh")
	args := []string{"install", "--set", "profile=demo", "-y", "--kubeconfig", kc}

	cold, err := env.RunProcess(mesh, args...)
	if err != nil {
		return nil, fmt.Errorf("first install: %w", err)
	}
	noop, err := env.MedianProcess(installRuns, mesh, args...)
	if err != nil {
		return nil, fmt.Errorf("re-install: %w", err)
	}

	objs, err := demoObjects()
	if err != nil {
		return nil, err
	}
	c, err := kube.NewClient(sb.RESTConfig())
	if err != nil {
		return nil, err
	}
	var base []time.Duration
	for i := 0; i < installRuns; i++ {
		d, err := sequentialApply(ctx, c, objs)
		if err != nil {
			return nil, fmt.Errorf("baseline apply: %w", err)
		}
		base = append(base, d)
	}
	sort.Slice(base, func(i, j int) bool { return base[i] < base[j] })
	baseline := base[len(base)/2]
	n := len(objs)
	cmd := "go run ./bench -only install"
	baseName := fmt.Sprintf("plain server-side apply of the same %d objects to the installed mesh (so each a no-op), one request each in sequence, in-process, no reads and no readiness wait (median of %d)", n, installRuns)
	return []Row{
		{
			Figure: fmt.Sprintf("mesh install --set profile=demo -y, fresh sandbox until every component is ready (%d objects, process)", n),
			Value:  Ms(cold.Wall), Unit: "ms", Baseline: baseName, BaselineValue: Ms(baseline),
			Command: cmd,
		},
		{
			Figure: fmt.Sprintf("no-op re-install of the demo profile (%d objects unchanged, process, median of %d)", n, installRuns),
			Value:  Ms(noop.Wall), Unit: "ms", Baseline: baseName, BaselineValue: Ms(baseline),
			Target: "< 2 s", Met: Check(noop.Wall < 2*time.Second), Command: cmd,
		},
	}, nil
}

func demoObjects() ([]*unstructured.Unstructured, error) {
	op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=demo"}})
	if err != nil {
		return nil, err
	}
	m, err := render.Render(op)
	if err != nil {
		return nil, err
	}
	var comps []install.Component
	for _, c := range m.Components {
		comps = append(comps, install.Component{Name: c.Name, Objects: c.Objects})
	}
	return install.Prepare(op.RevisionLabel(), comps).Objects(), nil
}

// sequentialApply is the baseline: each object sent once with server-side
// apply, one after the other, nothing read first and nothing waited for.
func sequentialApply(ctx context.Context, c *kube.Client, objs []*unstructured.Unstructured) (time.Duration, error) {
	force := true
	start := time.Now()
	for _, o := range objs {
		ri, _, err := c.Resource(kube.RefOf(o))
		if err != nil {
			return 0, err
		}
		body, err := runtime.Encode(unstructured.UnstructuredJSONScheme, o)
		if err != nil {
			return 0, err
		}
		if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: kube.FieldManager, Force: &force}); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
