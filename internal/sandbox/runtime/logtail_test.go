package runtime

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// seekTail is what `kubectl logs --tail=N` gets from a runtime pod.
func TestSeekTail(t *testing.T) {
	for _, tc := range []struct {
		content string
		n       int64
		want    string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 0, ""},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc", 1, "c"}, // a last line still being written
		{"a\nb\nc", 2, "b\nc"},
		{"", 5, ""},
		{"\n\n", 1, "\n"},
	} {
		p := filepath.Join(t.TempDir(), "log")
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := seekTail(f, tc.n); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if string(got) != tc.want {
			t.Errorf("tail %d of %q = %q, want %q", tc.n, tc.content, got, tc.want)
		}
	}
}

// A log longer than seekTail's read block keeps its lines whole.
func TestSeekTailAcrossBlocks(t *testing.T) {
	var content []byte
	for i := 0; i < 5000; i++ {
		content = append(content, "0123456789\n"...)
	}
	content = append(content, "last\n"...)
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := seekTail(f, 1001); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	if len(got) != 1000*11+5 || string(got[:11]) != "0123456789\n" || string(got[len(got)-5:]) != "last\n" {
		t.Fatalf("tail 1001: %d bytes, starting %q", len(got), got[:min(len(got), 20)])
	}
}
