package analyzers

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mesh.dev/mesh/internal/analyze"
	"mesh.dev/mesh/internal/cli"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/codes")

// TestCodes analyses each testdata/codes/<CODE> directory with every
// analyzer, as mesh analyze does: fires.yaml must give exactly the
// messages of that code in fires.golden (run with -update to accept a
// change), clean.yaml none of that code. The fixtures are written from
// the description of each message, what a user would write.
func TestCodes(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "codes", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	known := map[string]bool{}
	for _, mt := range analyze.AllMessageTypes() {
		known[mt.Code] = true
	}
	for _, dir := range dirs {
		// A directory may be CODE or CODE-topic (several fixtures of one code).
		code, _, _ := strings.Cut(filepath.Base(dir), "-")
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if !known[code] {
				t.Fatalf("%s is not a message code of ours", code)
			}
			fires := ofCode(t, filepath.Join(dir, "fires.yaml"), code)
			if fires == "" {
				t.Errorf("fires.yaml gives no %s", code)
			}
			golden := filepath.Join(dir, "fires.golden")
			if *update {
				if err := os.WriteFile(golden, []byte(fires), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if fires != string(want) {
				t.Errorf("fires.yaml differs from %s (run with -update to accept):\n%s", golden, fires)
			}
			if clean := ofCode(t, filepath.Join(dir, "clean.yaml"), code); clean != "" {
				t.Errorf("clean.yaml gives %s:\n%s", code, clean)
			}
		})
	}
}

// ofCode analyses one file with every analyzer and returns the messages
// of one code in the log format.
func ofCode(t *testing.T, path, code string) string {
	t.Helper()
	res, err := analyze.Analyze(context.Background(), analyze.Request{Paths: []string{path}, Analyzers: All()})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []analyze.Message
	for _, m := range res.Messages {
		if m.Type.Code == code {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := analyze.Write(&b, analyze.FormatLog, msgs, analyze.WriteOptions{Colors: cli.NewColors(&b, false)}); err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(b.String(), filepath.ToSlash(filepath.Dir(path))+"/", "")
}
