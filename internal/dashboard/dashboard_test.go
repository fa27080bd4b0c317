package dashboard

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct{ ref, kind, name, ns string }{
		{"productpage-v1-abc", "pod", "productpage-v1-abc", ""},
		{"productpage-v1-abc.bookinfo", "pod", "productpage-v1-abc", "bookinfo"},
		{"pod/ratings-0.default", "pod", "ratings-0", "default"},
		{"deployment/mesh-pilot.mesh-system", "deployment", "mesh-pilot", "mesh-system"},
		{"deploy/productpage-v1", "deployment", "productpage-v1", ""},
		{"deployments.apps/x", "deployment", "x", ""},
		{"svc/ratings.bookinfo", "service", "ratings", "bookinfo"},
		{"sts/db", "statefulset", "db", ""},
		{"ds/agent", "daemonset", "agent", ""},
		{"rs/r", "replicaset", "r", ""},
		{"job/j", "job", "j", ""},
	} {
		kind, name, ns, err := ParseRef(tc.ref)
		if err != nil || kind != tc.kind || name != tc.name || ns != tc.ns {
			t.Errorf("ParseRef(%q) = %q %q %q %v, want %q %q %q", tc.ref, kind, name, ns, err, tc.kind, tc.name, tc.ns)
		}
	}
	for _, bad := range []string{"cronjob/x", "deployment/", "a/b/c", ""} {
		if _, _, _, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q): no error", bad)
		}
	}
}

func TestBrowserCommand(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the display checks are Linux's")
	}
	dir := t.TempDir()
	prog := filepath.Join(dir, "mybrowser")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	const url = "http://localhost:9090"

	cmd, err := Browser{Env: env(map[string]string{"BROWSER": "no-such-browser:" + prog + " --new-window"})}.Command(url)
	if err != nil || cmd.Path != prog || !slices.Equal(cmd.Args[1:], []string{"--new-window", url}) {
		t.Errorf("$BROWSER list: %v %v, want %s --new-window URL", cmd, err, prog)
	}
	cmd, err = Browser{Env: env(map[string]string{"BROWSER": prog + " --url=%s"})}.Command(url)
	if err != nil || !slices.Equal(cmd.Args[1:], []string{"--url=" + url}) {
		t.Errorf("$BROWSER with %%s: %v %v", cmd, err)
	}
	if _, err := (Browser{Env: env(map[string]string{"BROWSER": "no-such-browser"})}).Command(url); !errors.Is(err, ErrNoBrowser) {
		t.Errorf("$BROWSER naming nothing installed: %v, want ErrNoBrowser", err)
	}
	if _, err := (Browser{Env: env(nil)}).Command(url); !errors.Is(err, ErrNoBrowser) {
		t.Errorf("no display and no $BROWSER: %v, want ErrNoBrowser", err)
	}
}
