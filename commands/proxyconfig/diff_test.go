package proxyconfig

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/proxyconfig"
)

// editedDump writes a copy of the sidecar fixture changed by edit.
func editedDump(t *testing.T, edit func(configs []any)) string {
	t.Helper()
	data, err := os.ReadFile(fixturePath(t, "sidecar-config-dump.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc["configs"].([]any))
	out, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "edited.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// section finds a config section by its type name, e.g. ClustersConfigDump.
func section(configs []any, typ string) map[string]any {
	for _, c := range configs {
		m := c.(map[string]any)
		if strings.HasSuffix(m["@type"].(string), "."+typ) {
			return m
		}
	}
	panic("no " + typ)
}

func exitCode(err error) int {
	var s *cli.SilentError
	if errors.As(err, &s) {
		return s.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestDiffIdentical(t *testing.T) {
	sidecar := fixturePath(t, "sidecar-config-dump.json")
	// Only the fields that always differ between dumps change here.
	bumped := editedDump(t, func(configs []any) {
		cl := section(configs, "ClustersConfigDump")
		cl["version_info"] = "2030-01-01T00:00:00Z/99"
		for _, e := range cl["dynamic_active_clusters"].([]any) {
			e.(map[string]any)["last_updated"] = "2030-01-01T00:00:00.000Z"
			e.(map[string]any)["version_info"] = "2030-01-01T00:00:00Z/99"
		}
	})
	for _, args := range [][]string{{"diff", sidecar, sidecar}, {"diff", sidecar, bumped}, {"diff", sidecar, bumped, "-o", "unified"}} {
		out, _, err := run(t, "", args...)
		if code := exitCode(err); code != 0 {
			t.Errorf("%v: exit %d (%v), want 0; output:\n%s", args[1:], code, err, out)
		}
	}
}

func TestDiffReportsChanges(t *testing.T) {
	sidecar := fixturePath(t, "sidecar-config-dump.json")
	edited := editedDump(t, func(configs []any) {
		cl := section(configs, "ClustersConfigDump")
		agent := cl["static_clusters"].([]any)[0].(map[string]any)["cluster"].(map[string]any)
		agent["connect_timeout"] = "5s"
		ls := section(configs, "ListenersConfigDump")
		ls["dynamic_listeners"] = []any{}
	})
	out, _, err := run(t, "", "diff", sidecar, edited)
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit %d (%v), want 1", code, err)
	}
	for _, want := range []string{
		"~ changed cluster agent",
		`connect_timeout: "0.250s" → "5s"`,
		"- removed listener main_internal",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "prometheus_stats") {
		t.Errorf("unchanged cluster reported:\n%s", out)
	}

	jout, _, err := run(t, "", "diff", sidecar, edited, "-o", "json")
	if exitCode(err) != 1 {
		t.Fatalf("json: %v", err)
	}
	var d proxyconfig.Diff
	if err := json.Unmarshal([]byte(jout), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Resources) != 2 || d.Resources[0].Fields[0].Path != "connect_timeout" || d.Resources[1].Change != proxyconfig.Removed {
		t.Errorf("json diff: %+v", d)
	}

	uout, _, err := run(t, "", "diff", sidecar, edited, "--output", "unified")
	if exitCode(err) != 1 {
		t.Fatalf("unified: %v", err)
	}
	for _, want := range []string{"--- " + sidecar, "+++ " + edited, `-  "connect_timeout": "0.250s",`, `+  "connect_timeout": "5s",`, "-# listener main_internal"} {
		if !strings.Contains(uout, want) {
			t.Errorf("unified diff lacks %q:\n%s", want, uout)
		}
	}
}

func TestDiffAdminAgainstFile(t *testing.T) {
	sidecar := fixturePath(t, "sidecar-config-dump.json")
	a := newAdminServer(t, sidecar)
	out, _, err := run(t, "", "diff", "admin://"+a.addr(), sidecar)
	if exitCode(err) != 0 {
		t.Errorf("live proxy serving the same dump: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	edited := editedDump(t, func(configs []any) {
		sec := section(configs, "SecretsConfigDump")
		sec["dynamic_active_secrets"] = sec["dynamic_active_secrets"].([]any)[:1]
	})
	out, _, err = run(t, "", "diff", "admin://"+a.addr(), "file://"+edited)
	if exitCode(err) != 1 || !strings.Contains(out, "- removed secret ROOTCA") {
		t.Errorf("exit %d, output:\n%s", exitCode(err), out)
	}
}

func TestDiffBadSideExit65(t *testing.T) {
	sidecar := fixturePath(t, "sidecar-config-dump.json")
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"configs": [`), 0o644)
	_, _, err := run(t, "", "diff", sidecar, bad)
	if !cli.IsData(err) || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("got %v", err)
	}
}
