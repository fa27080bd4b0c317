package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"helm.sh/helm/v3/pkg/action"

	"mesh.dev/mesh/internal/render"
	"mesh.dev/mesh/internal/spec"
)

func init() {
	register(Bench{Name: "render", Issue: 2, Run: benchRender})
}

// benchRender measures `mesh manifest generate` as a whole process beside
// `mesh version` (the same binary doing nothing), and 100 renders in one
// process beside 100 `helm template` runs (Helm's client-only install
// action) of the same charts and values.
func benchRender(env *Env) ([]Row, error) {
	mesh := env.Bin("mesh")
	if _, err := os.Stat(mesh); err != nil {
		return nil, fmt.Errorf("%s: run make build first", mesh)
	}
	const runs = 15
	base, err := env.MedianProcess(runs, mesh, "version")
	if err != nil {
		return nil, err
	}
	gen, err := env.MedianProcess(runs, mesh, "manifest", "generate", "--set", "profile=demo")
	if err != nil {
		return nil, err
	}

	op, _, err := spec.Load(spec.LoadOptions{Sets: []string{"profile=demo"}})
	if err != nil {
		return nil, err
	}
	inputs := render.Inputs(op)
	const renders = 100
	cpu0 := processCPU()
	start := time.Now()
	for i := 0; i < renders; i++ {
		if _, err := render.Render(op); err != nil {
			return nil, err
		}
	}
	ours := time.Since(start)
	oursCPU := processCPU() - cpu0

	cpu0 = processCPU()
	start = time.Now()
	for i := 0; i < renders; i++ {
		for _, in := range inputs {
			ch, err := render.Chart(in.Chart)
			if err != nil {
				return nil, err
			}
			inst := action.NewInstall(&action.Configuration{})
			inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
			inst.ReleaseName, inst.Namespace = "mesh", "mesh-system"
			if _, err := inst.Run(ch, in.Values); err != nil {
				return nil, fmt.Errorf("helm template %s: %w", in.Chart, err)
			}
		}
	}
	helm := time.Since(start)
	helmCPU := processCPU() - cpu0

	return []Row{
		{
			Figure: "mesh manifest generate --set profile=demo (whole process, median of 15)",
			Value:  Ms(gen.Wall), Unit: "ms",
			Baseline: "mesh version (same binary, median of 15)", BaselineValue: Ms(base.Wall),
			Target: "< 150 ms", Met: Check(gen.Wall < 150*time.Millisecond),
			Command: "bin/mesh manifest generate --set profile=demo >/dev/null",
		},
		{
			Figure: "manifest generate CPU (user+sys, median run)",
			Value:  Ms(gen.CPU), Unit: "ms",
			Baseline: "mesh version CPU", BaselineValue: Ms(base.CPU),
			Command: "as above",
		},
		{
			Figure: "manifest generate peak RSS",
			Value:  MiB(gen.MaxRSS), Unit: "MiB",
			Baseline: "mesh version peak RSS", BaselineValue: MiB(base.MaxRSS),
			Command: "as above",
		},
		{
			Figure: "100 renders of the demo profile in one process",
			Value:  ours.Seconds(), Unit: "s",
			Baseline: "100 × helm template (client-only install action) of the same charts and values", BaselineValue: helm.Seconds(),
			Target: "< 2 s", Met: Check(ours < 2*time.Second),
			Command: "go run ./bench -only render (render.Render in a loop); go test ./internal/render -bench RenderDemo for allocations",
		},
		{
			Figure: "100 renders in one process, CPU (user+sys, GC included)",
			Value:  oursCPU.Seconds(), Unit: "s",
			Baseline: "100 × helm template, CPU", BaselineValue: helmCPU.Seconds(),
			Command: "as above; CPU time does not grow when other processes compete for the cores",
		},
	}, nil
}

// processCPU is this process's user+system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
