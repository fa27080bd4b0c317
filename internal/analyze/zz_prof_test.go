package analyze_test

import (
	"context"
	"os"
	"testing"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/analyze/analyzers"
)

func TestZZProfile(t *testing.T) {
	dir := os.Getenv("PROF_DIR")
	if dir == "" {
		t.Skip()
	}
	res, err := analyze.Analyze(context.Background(), analyze.Request{Paths: []string{dir}, Recursive: true, Analyzers: analyzers.All()})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(len(res.Messages), res.Objects)
}
