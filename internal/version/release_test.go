package version

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The Makefile and .goreleaser.yaml must stamp the same variables, and
// those variables must exist here, or `mesh version` silently shows
// 0.0.0-dev in one kind of build.
func TestLdflagsAgree(t *testing.T) {
	root := filepath.Join("..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	xvar := regexp.MustCompile(`-X \$\(PKG\)/internal/version\.(\w+)=`)
	var makeVars []string
	for _, m := range xvar.FindAllStringSubmatch(string(mk), -1) {
		makeVars = append(makeVars, m[1])
	}
	sort.Strings(makeVars)

	gr, err := os.ReadFile(filepath.Join(root, ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Builds []struct {
			ID      string   `json:"id"`
			Main    string   `json:"main"`
			Goos    []string `json:"goos"`
			Goarch  []string `json:"goarch"`
			Ldflags []string `json:"ldflags"`
		} `json:"builds"`
	}
	if err := yaml.Unmarshal(gr, &cfg); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	var mains []string
	grX := regexp.MustCompile(`-X mesh\.dev/mesh/internal/version\.(\w+)=`)
	for _, b := range cfg.Builds {
		mains = append(mains, b.Main)
		if strings.Join(b.Goos, ",") != "linux,darwin" || strings.Join(b.Goarch, ",") != "amd64,arm64" {
			t.Errorf("build %s targets %v/%v, want linux+darwin, amd64+arm64", b.ID, b.Goos, b.Goarch)
		}
		var vars []string
		for _, m := range grX.FindAllStringSubmatch(strings.Join(b.Ldflags, " "), -1) {
			vars = append(vars, m[1])
		}
		sort.Strings(vars)
		if strings.Join(vars, ",") != strings.Join(makeVars, ",") {
			t.Errorf("build %s stamps %v, the Makefile %v", b.ID, vars, makeVars)
		}
	}
	sort.Strings(mains)
	if strings.Join(mains, ",") != "./cmd/mesh,./cmd/mesh-pilot,./cmd/mesh-proxy" {
		t.Errorf("goreleaser builds %v, want the three binaries", mains)
	}
	known := map[string]bool{"Version": true, "GitCommit": true, "BuildDate": true}
	for _, v := range makeVars {
		if !known[v] {
			t.Errorf("the Makefile stamps %s, which internal/version does not declare", v)
		}
	}
	if len(makeVars) != len(known) {
		t.Errorf("the Makefile stamps %v, want all of Version, GitCommit, BuildDate", makeVars)
	}
}
