package proxyconfig

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/configdump"
)

func TestTablesGolden(t *testing.T) {
	sidecar := fixturePath(t, "sidecar-config-dump.json")
	boot := fixturePath(t, "bootstrap-dump.json")
	cases := []struct {
		golden string
		args   []string
	}{
		{"sidecar-cluster.txt", []string{"cluster", "-f", sidecar}},
		{"sidecar-listener.txt", []string{"listener", "-f", sidecar}},
		{"sidecar-route.txt", []string{"route", "-f", sidecar}},
		{"sidecar-endpoint.txt", []string{"endpoint", "-f", sidecar}},
		{"sidecar-secret.txt", []string{"secret", "-f", sidecar}},
		{"sidecar-bootstrap.txt", []string{"bootstrap", "-f", sidecar}},
		{"sidecar-all.txt", []string{"all", "-f", sidecar}},
		{"bootstrap-bootstrap.txt", []string{"bootstrap", "-f", boot}},
		{"bootstrap-all.txt", []string{"all", "-f", boot}},
		// Filters.
		{"sidecar-cluster-fqdn.txt", []string{"cluster", "-f", sidecar, "--fqdn", "httpbin"}},
		{"sidecar-cluster-direction.txt", []string{"cluster", "-f", sidecar, "--direction", "inbound-vip", "--port", "8000"}},
		{"sidecar-cluster-port-none.txt", []string{"cluster", "-f", sidecar, "--port", "9999"}},
		{"sidecar-listener-port.txt", []string{"listener", "-f", sidecar, "--port", "15021"}},
		{"sidecar-listener-name.txt", []string{"listener", "-f", sidecar, "--name", "main_internal"}},
		{"sidecar-endpoint-cluster.txt", []string{"endpoint", "-f", sidecar, "--cluster", "prometheus"}},
		{"sidecar-secret-name.txt", []string{"secret", "-f", sidecar, "--name", "ROOT"}},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			out, _, err := run(t, "", c.args...)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, c.golden, out)
		})
	}
}

// The tables must show what the dump says, not only match a golden file.
func TestClusterTableContent(t *testing.T) {
	out, _, err := run(t, "", "cluster", "-f", fixturePath(t, "sidecar-config-dump.json"), "--fqdn", "httpbin")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want header and one row, got:\n%s", out)
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "httpbin.default.svc.cluster.local 8000 http inbound-vip EDS -" {
		t.Errorf("row: %q", f)
	}
}

func TestSecretValidity(t *testing.T) {
	out, _, err := run(t, "", "secret", "-f", fixturePath(t, "sidecar-config-dump.json"))
	if err != nil {
		t.Fatal(err)
	}
	// At certTime the workload certificate (valid 2023-05-15..16) has expired
	// and the root (2023..2033) is valid.
	rows := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		rows[f[0]] = strings.Join(f[1:], " ")
	}
	if rows["default"] != "Cert Chain ACTIVE false 6fbee254c22900615cb1f74e3d2f1713 2023-05-16T01:32:52Z 2023-05-15T01:30:52Z" {
		t.Errorf("workload certificate row: %q", rows["default"])
	}
	if rows["ROOTCA"] != "CA ACTIVE true 193a543fe2b0d9cd4847675394dfc54 2033-05-02T03:41:33Z 2023-05-05T03:41:33Z" {
		t.Errorf("root row: %q", rows["ROOTCA"])
	}
}

func TestStructuredOutputIsTheRawResources(t *testing.T) {
	sidecar := fixturePath(t, "sidecar-config-dump.json")
	out, _, err := run(t, "", "cluster", "-f", sidecar, "--fqdn", "httpbin", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("-o json is not a JSON array: %v\n%s", err, out)
	}
	if len(got) != 1 || got[0]["name"] != "inbound-vip|8000|http|httpbin.default.svc.cluster.local" ||
		got[0]["@type"] != "type.googleapis.com/envoy.config.cluster.v3.Cluster" {
		t.Errorf("got %v", got)
	}
	golden(t, "sidecar-cluster-fqdn.json", out)

	yout, _, err := run(t, "", "listener", "-f", sidecar, "--port", "15021", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ly []map[string]any
	if err := yaml.Unmarshal([]byte(yout), &ly); err != nil {
		t.Fatalf("-o yaml: %v", err)
	}
	if len(ly) != 1 || ly[0]["address"] == nil {
		t.Errorf("got %v", ly)
	}
	golden(t, "sidecar-listener-port.yaml", yout)

	bout, _, err := run(t, "", "bootstrap", "-f", fixturePath(t, "bootstrap-dump.json"), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(bout, `"userAgentBuildVersion"`) {
		t.Errorf("bootstrap -o json should print the resource as the proxy wrote it:\n%s", bout)
	}
}

func TestStdin(t *testing.T) {
	data, err := os.ReadFile(fixturePath(t, "sidecar-config-dump.json"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, string(data), "route", "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "inbound|http|8000") {
		t.Errorf("route from stdin:\n%s", out)
	}
}

func TestBadDumpsExit65(t *testing.T) {
	data, err := os.ReadFile(fixturePath(t, "sidecar-config-dump.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	truncated := filepath.Join(dir, "truncated.json")
	os.WriteFile(truncated, data[:len(data)*2/3], 0o644)
	corrupt := filepath.Join(dir, "corrupt.json")
	os.WriteFile(corrupt, []byte(strings.Replace(string(data), `"name": "agent",`, `"name": "agent"`, 1)), 0o644)
	for _, c := range []struct {
		file string
		want []string
	}{
		{truncated, []string{"truncated.json", "truncated", "line "}},
		{corrupt, []string{"corrupt.json", "line 31, column 13"}},
	} {
		// The corruption is in the clusters section: every command that reads
		// it must refuse. (A listener table skips that section's contents.)
		for _, args := range [][]string{{"cluster"}, {"all"}, {"dump"}, {"diff", c.file}} {
			sub := args[0]
			_, _, err := run(t, "", append(args, "-f", c.file)...)
			if sub == "diff" {
				_, _, err = run(t, "", "diff", fixturePath(t, "sidecar-config-dump.json"), c.file)
			}
			if !cli.IsData(err) {
				t.Fatalf("%s -f %s: error %v (%T) is not a data error (exit 65)", sub, filepath.Base(c.file), err, err)
			}
			var pe *configdump.ParseError
			if !errors.As(err, &pe) {
				t.Errorf("%s: error does not carry the parse position: %v", sub, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s -f %s: %q does not mention %q", sub, filepath.Base(c.file), err, w)
				}
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	sidecar := fixturePath(t, "sidecar-config-dump.json")
	for _, args := range [][]string{
		{"cluster"},
		{"cluster", "-f", sidecar, "--admin-address", "127.0.0.1:1"},
		{"cluster", "-f", sidecar, "--direction", "sideways"},
		{"cluster", "-f", sidecar, "--port", "70000"},
		{"cluster", "-f", sidecar, "-o", "xml"},
		{"endpoint", "-f", sidecar, "--status", "GREAT"},
		{"cluster", "-f", filepath.Join(t.TempDir(), "missing.json")},
		{"log", "--admin-address", "127.0.0.1:1", "--level", "loud"},
		{"log", "--admin-address", "127.0.0.1:1", "--level", "http:debug,info"},
		{"diff", "-", "-"},
	} {
		_, _, err := run(t, "", args...)
		if !cli.IsUsage(err) {
			t.Errorf("%v: got %v, want a usage error (exit 64)", args, err)
		}
	}
}
