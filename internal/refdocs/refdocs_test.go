package refdocs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"mesh.dev/mesh/commands"
	"mesh.dev/mesh/internal/refdocs"
)

// TestReferenceUpToDate fails when docs/reference no longer matches the
// command tree (a command, flag or help text changed without `make docs`).
func TestReferenceUpToDate(t *testing.T) {
	root := commands.NewRootCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	pages, err := refdocs.Pages(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "docs", "reference")
	var stale []string
	for name, want := range pages {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			stale = append(stale, name)
		}
	}
	onDisk, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	for _, f := range onDisk {
		if _, ok := pages[filepath.Base(f)]; !ok {
			stale = append(stale, filepath.Base(f)+" (no such command any more)")
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("docs/reference is out of date; run make docs. Stale pages: %v", stale)
	}
	if _, ok := pages["mesh_manifest_generate.md"]; !ok {
		t.Error("no page for mesh manifest generate")
	}
}
