package admin

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestCPUProfilerWritesAProfileToProfilePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "envoy.prof")
	s := &Server{ProfilePath: path}
	h := s.Handler()
	do := func(method, target string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
		return w.Code
	}
	if c := do(http.MethodGet, "/cpuprofiler?enable=y"); c != http.StatusMethodNotAllowed {
		t.Fatalf("GET /cpuprofiler: %d, want 405", c)
	}
	if c := do(http.MethodPost, "/cpuprofiler?enable=maybe"); c != http.StatusBadRequest {
		t.Fatalf("enable=maybe: %d, want 400", c)
	}
	if c := do(http.MethodPost, "/cpuprofiler?enable=y"); c != http.StatusOK {
		t.Fatalf("enable=y: %d", c)
	}
	if c := do(http.MethodPost, "/cpuprofiler?enable=n"); c != http.StatusOK {
		t.Fatalf("enable=n: %d", c)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no profile at admin.profile_path: %v", err)
	}
	// A pprof profile is a gzipped protobuf.
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("%s is not a gzipped pprof profile (%d bytes)", path, len(b))
	}
	// Stopping again is harmless; a path that cannot be created is an error naming the setting.
	if c := do(http.MethodPost, "/cpuprofiler?enable=n"); c != http.StatusOK {
		t.Fatalf("second enable=n: %d", c)
	}
	s2 := &Server{ProfilePath: filepath.Join(t.TempDir(), "missing", "p.prof")}
	w := httptest.NewRecorder()
	s2.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/cpuprofiler?enable=y", nil))
	if w.Code != http.StatusInternalServerError || !bytes.Contains(w.Body.Bytes(), []byte("admin.profile_path")) {
		t.Fatalf("unwritable path: %d %s", w.Code, w.Body)
	}
}
