package admin

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
)

// DefaultProfilePath is Envoy's admin.profile_path default.
const DefaultProfilePath = "/var/log/envoy/envoy.prof"

// cpuProfiler is the state behind /cpuprofiler: at most one profile runs per process.
type cpuProfiler struct {
	mu sync.Mutex
	f  *os.File
}

// cpuprofiler is Envoy's POST /cpuprofiler?enable=y|n: y starts a CPU
// profile written to the bootstrap's admin.profile_path, n stops and
// flushes it. The file is Go's pprof format (go tool pprof reads it), not
// gperftools'; nothing runs until it is asked for.
func (s *Server) cpuprofiler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "This endpoint requires POST", http.StatusMethodNotAllowed)
		return
	}
	path := s.ProfilePath
	if path == "" {
		path = DefaultProfilePath
	}
	p := &s.prof
	p.mu.Lock()
	defer p.mu.Unlock()
	switch r.URL.Query().Get("enable") {
	case "y":
		if p.f != nil {
			io.WriteString(w, "OK\n") // already running, as Envoy answers
			return
		}
		f, err := os.Create(path)
		if err != nil {
			http.Error(w, fmt.Sprintf("failed to start the profiler: %v (admin.profile_path)", err), http.StatusInternalServerError)
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			http.Error(w, fmt.Sprintf("failed to start the profiler: %v", err), http.StatusInternalServerError)
			return
		}
		p.f = f
	case "n":
		if p.f != nil {
			pprof.StopCPUProfile()
			err := p.f.Close()
			p.f = nil
			if err != nil {
				http.Error(w, fmt.Sprintf("writing %s: %v", path, err), http.StatusInternalServerError)
				return
			}
		}
	default:
		http.Error(w, "usage: /cpuprofiler?enable=<y|n>", http.StatusBadRequest)
		return
	}
	io.WriteString(w, "OK\n")
}
