package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"mesh.dev/mesh/internal/configdump/dumpgen"
)

// The proxyconfig benchmark times `mesh proxy-config cluster -f big.json`
// as a whole process over a generated Istio-shaped config dump of about
// 50 MB with 5,000 clusters (1,250 services × default + 3 subsets, 8 EDS
// endpoints each, 50 ports with listeners and routes). The baseline is a
// small process (this benchmark binary re-run in a helper mode) that only
// decodes the same file with encoding/json into an `any`: what a plain
// JSON read of the file costs, with no Envoy types at all.
func init() {
	register(Bench{Name: "proxyconfig", Issue: 7, Run: benchProxyConfig})
	// The helper mode: decode the file and exit before main parses flags.
	if len(os.Args) == 3 && os.Args[1] == proxyConfigBaselineArg {
		data, err := os.ReadFile(os.Args[2])
		if err == nil {
			var v any
			err = json.Unmarshal(data, &v)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

const (
	proxyConfigRuns        = 5
	proxyConfigBaselineArg = "proxyconfig-json-baseline"
)

var proxyConfigSpec = dumpgen.Spec{Services: 1250, Subsets: 3, EndpointsPerCluster: 8, Ports: 50, Namespaces: 20}

func benchProxyConfig(env *Env) ([]Row, error) {
	dir := filepath.Join(env.Root, ".cache", "proxyconfig-bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("config-dump-%d-clusters.json", proxyConfigSpec.Clusters()))
	if _, err := os.Stat(path); err != nil {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		err = dumpgen.Write(f, proxyConfigSpec)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("generate the dump: %w", err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	baseline, err := env.MedianProcess(proxyConfigRuns, self, proxyConfigBaselineArg, path)
	if err != nil {
		return nil, fmt.Errorf("baseline json decode: %w", err)
	}
	st, err := env.MedianProcess(proxyConfigRuns, env.Bin("mesh"), "proxy-config", "cluster", "-f", path)
	if err != nil {
		return nil, fmt.Errorf("proxy-config cluster: %w", err)
	}
	rel, _ := filepath.Rel(env.Root, path)
	cmd := "bin/mesh proxy-config cluster -f " + rel
	base := "encoding/json decode of the same file into any (process)"
	figure := fmt.Sprintf("proxy-config cluster, %.0f MB dump with %d clusters", float64(size)/1e6, proxyConfigSpec.Clusters())
	return []Row{
		{Figure: figure + fmt.Sprintf(" (process, median of %d)", proxyConfigRuns), Value: Ms(st.Wall), Unit: "ms",
			Baseline: base, BaselineValue: Ms(baseline.Wall), Target: "< 1000 ms", Met: Check(st.Wall.Seconds() < 1), Command: cmd},
		{Figure: figure + ": CPU time (user + system)", Value: Ms(st.CPU), Unit: "ms",
			Baseline: base, BaselineValue: Ms(baseline.CPU), Command: cmd},
		{Figure: figure + fmt.Sprintf(": peak RSS (file is %.1f MiB)", MiB(size)), Value: MiB(st.MaxRSS), Unit: "MiB",
			Baseline: base, BaselineValue: MiB(baseline.MaxRSS), Target: fmt.Sprintf("< 4× the file (%.0f MiB)", 4*MiB(size)),
			Met: Check(st.MaxRSS < 4*size), Command: cmd},
	}, nil
}
