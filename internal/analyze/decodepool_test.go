package analyze

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mesh.dev/mesh/internal/resource"
)

// A large file is decoded batch by batch on several goroutines; when more
// than one of its objects cannot be decoded, the error must still name the
// first of them, on every run, as the serial reader did.
func TestDecodeErrorNamesTheFirstBadObject(t *testing.T) {
	var b strings.Builder
	line, firstBad := 1, 0
	for i := range 1500 {
		name := fmt.Sprintf("name: svc-%d", i)
		if i == 511 || i == 512 || i == 1400 { // the last of a batch, the first of the next (batches of 64)
			name = "labels: {app: nameless}"
			if firstBad == 0 {
				firstBad = line
			}
		}
		fmt.Fprintf(&b, "apiVersion: v1\nkind: Service\nmetadata:\n  %s\nspec:\n  ports:\n  - port: 80\n---\n", name)
		line += 8
	}
	path := filepath.Join(t.TempDir(), "all.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		_, err := Analyze(context.Background(), Request{Paths: []string{path}})
		var pe *resource.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("Analyze = %v, want a ParseError", err)
		}
		if pe.Line != firstBad || !strings.Contains(err.Error(), "no metadata.name") {
			t.Fatalf("error %q at line %d, want the nameless Service at line %d", err, pe.Line, firstBad)
		}
	}
}
