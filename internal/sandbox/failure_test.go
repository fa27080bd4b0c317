package sandbox_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mesh.dev/mesh/internal/sandbox"
	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func startError(t *testing.T, o sandbox.Options) *sandbox.StartError {
	t.Helper()
	before := childPIDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := sandbox.Start(ctx, o)
	if err == nil {
		c.Stop()
		t.Fatal("Start succeeded, want a failure")
	}
	var se *sandbox.StartError
	if !errors.As(err, &se) {
		t.Fatalf("Start error %T %q, want a *sandbox.StartError", err, err)
	}
	for pid := range childPIDs(t) {
		if !before[pid] {
			t.Errorf("process %d is still running after the failed start", pid)
		}
	}
	return se
}

func TestMissingBinariesSayRunMakeTools(t *testing.T) {
	se := startError(t, sandbox.Options{BinDir: t.TempDir()})
	if se.Component != sandbox.Etcd {
		t.Errorf("component = %q, want %q (the first missing binary)", se.Component, sandbox.Etcd)
	}
	if !strings.Contains(se.Error(), "make tools") || !strings.Contains(se.Error(), "kube-apiserver") {
		t.Errorf("error does not name the missing binaries and `make tools`:\n%v", se)
	}
}

func TestTakenAPIServerPortNamesComponentAndLog(t *testing.T) {
	bin := sandboxtest.Cluster(t).BinDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	se := startError(t, sandbox.Options{BinDir: bin, APIServerPort: port})
	if se.Component != sandbox.APIServer {
		t.Errorf("component = %q, want %q\n%v", se.Component, sandbox.APIServer, se)
	}
	if !strings.Contains(se.LogTail, "address already in use") || !strings.Contains(se.LogTail, strconv.Itoa(port)) {
		t.Errorf("log tail does not show the taken port %d:\n%s", port, se.LogTail)
	}
	if !strings.Contains(se.Hint, "port") {
		t.Errorf("hint %q does not say what to do about the port", se.Hint)
	}
}

func TestCrashingEtcdIsReportedWithItsLog(t *testing.T) {
	// A stand-in etcd that dies at once, as a real one does on a damaged data folder.
	bin := t.TempDir()
	script := "#!/bin/sh\necho 'panic: simulated damaged data folder' >&2\nexit 2\n"
	if err := os.WriteFile(filepath.Join(bin, "etcd"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	se := startError(t, sandbox.Options{BinDir: bin, EtcdOnly: true})
	if se.Component != sandbox.Etcd {
		t.Errorf("component = %q, want etcd", se.Component)
	}
	if !strings.Contains(se.LogTail, "simulated damaged data folder") {
		t.Errorf("log tail misses etcd's last words:\n%s", se.LogTail)
	}
	if !strings.Contains(se.Error(), "exited") || se.Hint == "" {
		t.Errorf("error should say etcd exited and what to do:\n%v", se)
	}
}

// childPIDs lists the live processes whose parent is this test binary.
func childPIDs(t *testing.T) map[int]bool {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	out := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[0] != "Z" && fields[1] == strconv.Itoa(me) {
			out[pid] = true
		}
	}
	return out
}
