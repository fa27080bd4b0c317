package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"mesh.dev/mesh/internal/sandbox"
)

// The sandbox benchmark starts the whole control plane a few times and sets
// its start-up time and memory beside etcd's alone, measured in the same run.
func init() {
	register(Bench{Name: "sandbox", Issue: 3, Run: benchSandbox})
}

const sandboxRuns = 3

// sandboxSettle lets the controllers finish their first sync before memory is read,
// so the figure is the sandbox at rest rather than mid-start.
const sandboxSettle = 5 * time.Second

type sandboxSample struct {
	ready, apiReady time.Duration
	rss             int64
}

func sampleSandbox(binDir string, etcdOnly bool) (sandboxSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := sandbox.Start(ctx, sandbox.Options{BinDir: binDir, EtcdOnly: etcdOnly})
	if err != nil {
		return sandboxSample{}, err
	}
	defer c.Stop()
	time.Sleep(sandboxSettle)
	total, _, err := c.MemoryRSS()
	if err != nil {
		return sandboxSample{}, err
	}
	t := c.Timings()
	return sandboxSample{ready: t.Ready, apiReady: t.APIServerReady, rss: total}, nil
}

func benchSandbox(env *Env) ([]Row, error) {
	binDir := filepath.Join(env.Root, "tools", "bin")
	var etcd, full []sandboxSample
	for i := 0; i < sandboxRuns; i++ {
		s, err := sampleSandbox(binDir, true)
		if err != nil {
			return nil, fmt.Errorf("etcd baseline: %w", err)
		}
		etcd = append(etcd, s)
		s, err = sampleSandbox(binDir, false)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		full = append(full, s)
	}
	med := func(xs []sandboxSample, f func(sandboxSample) time.Duration) time.Duration {
		ds := make([]time.Duration, len(xs))
		for i, x := range xs {
			ds[i] = f(x)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	maxRSS := func(xs []sandboxSample) int64 {
		var m int64
		for _, x := range xs {
			m = max(m, x.rss)
		}
		return m
	}
	ready := med(full, func(s sandboxSample) time.Duration { return s.ready })
	apiReady := med(full, func(s sandboxSample) time.Duration { return s.apiReady })
	etcdReady := med(etcd, func(s sandboxSample) time.Duration { return s.ready })
	rss, etcdRSS := maxRSS(full), maxRSS(etcd)
	cmd := "go run ./bench -only sandbox"
	return []Row{
		{
			Figure: fmt.Sprintf("sandbox start to usable API: nodes Ready, default ServiceAccount (median of %d)", sandboxRuns),
			Value:  ready.Seconds(), Unit: "s",
			Baseline: "etcd alone, start to /health", BaselineValue: etcdReady.Seconds(),
			Target: "< 20 s", Met: Check(ready < 20*time.Second), Command: cmd,
		},
		{
			Figure: fmt.Sprintf("sandbox start to kube-apiserver /readyz (median of %d)", sandboxRuns),
			Value:  apiReady.Seconds(), Unit: "s",
			Baseline: "etcd alone, start to /health", BaselineValue: etcdReady.Seconds(),
			Command: cmd,
		},
		{
			Figure: fmt.Sprintf("sandbox memory: RSS summed over etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, %s after start (max of %d)", sandboxSettle, sandboxRuns),
			Value:  MiB(rss), Unit: "MiB",
			Baseline: "etcd alone, RSS", BaselineValue: MiB(etcdRSS),
			Target: "< 1024 MiB", Met: Check(rss < 1<<30), Command: cmd,
		},
	}, nil
}
