package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Env tells a benchmark where things are and measures processes for it.
type Env struct {
	Root    string // repository root
	BinDir  string // where `make build` put mesh, mesh-pilot, mesh-proxy
	Machine string // one line describing the machine
}

func newEnv() (*Env, error) {
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return nil, fmt.Errorf("run from inside the repository")
		}
		root = parent
	}
	return &Env{Root: root, BinDir: filepath.Join(root, "bin"), Machine: machine()}, nil
}

// Bin returns the path of a binary built by `make build`.
func (e *Env) Bin(name string) string { return filepath.Join(e.BinDir, name) }

// ProcessStats is what one run of a command cost.
type ProcessStats struct {
	Wall   time.Duration
	CPU    time.Duration // user + system
	MaxRSS int64         // bytes
}

// gnuTime measures a child's peak RSS. The rusage os/exec hands back cannot
// be used for that: Go starts children with vfork (CLONE_VM), and when the
// child execs, the kernel folds the parent's high-water RSS into the
// child's, so every figure would be at least this bench process's own
// (~84 MiB). GNU time fork()s its child, so its %M is the child's alone.
const gnuTime = "/usr/bin/time"

// RSSMethod says how MaxRSS figures were measured, for the rows to name.
func (e *Env) RSSMethod() string {
	if e.hasGNUTime() {
		return "peak RSS by GNU time's %M"
	}
	return "peak RSS by wait4 rusage, which includes the bench process's own RSS (install Debian's time package for the child's alone)"
}

func (e *Env) hasGNUTime() bool {
	_, err := os.Stat(gnuTime)
	return err == nil
}

// RunProcess runs a command to completion, discarding its output, and measures it.
func (e *Env) RunProcess(name string, args ...string) (ProcessStats, error) {
	useTime := e.hasGNUTime()
	cmd := exec.Command(name, args...)
	if useTime {
		cmd = exec.Command(gnuTime, append([]string{"-f", "%M", name}, args...)...)
	}
	cmd.Dir = e.Root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return ProcessStats{}, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, tail(stderr.String()))
	}
	st := ProcessStats{Wall: wall}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		// With GNU time in between, wait4 counts its child's CPU too.
		st.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		st.MaxRSS = ru.Maxrss * 1024
	}
	if useTime {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		kib, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		if err != nil {
			return ProcessStats{}, fmt.Errorf("%s printed %q, expected the peak RSS in KiB", gnuTime, tail(stderr.String()))
		}
		st.MaxRSS = kib * 1024
	}
	return st, nil
}

// MedianProcess runs a command n times and returns the median wall time and the largest RSS.
func (e *Env) MedianProcess(n int, name string, args ...string) (ProcessStats, error) {
	var runs []ProcessStats
	for i := 0; i < n; i++ {
		st, err := e.RunProcess(name, args...)
		if err != nil {
			return ProcessStats{}, err
		}
		runs = append(runs, st)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].Wall < runs[j].Wall })
	med := runs[len(runs)/2]
	for _, r := range runs {
		med.MaxRSS = max(med.MaxRSS, r.MaxRSS)
	}
	return med, nil
}

// Ms converts a duration to milliseconds for a Row.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// MiB converts bytes to mebibytes for a Row.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }

// Check returns a pointer to ok, for Row.Met.
func Check(ok bool) *bool { return &ok }

func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var si syscall.Sysinfo_t
	mem := ""
	if syscall.Sysinfo(&si) == nil {
		mem = fmt.Sprintf(", %.0f GiB memory", float64(si.Totalram)*float64(si.Unit)/(1<<30))
	}
	return fmt.Sprintf("%d cores (%s)%s, %s %s/%s", runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}
