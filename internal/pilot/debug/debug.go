// Package debug serves pilot's debug and metrics HTTP endpoints (port 15014):
// /debug/syncz, /debug/config_dump, /debug/rolloutz, /debug/mesh, /metrics, /ready,
// /version, and at / the list of them.
package debug

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mesh.dev/mesh/internal/pilot/xds"
	"mesh.dev/mesh/internal/version"
)

// Handler returns the debug endpoints for server s, with metrics from g.
// ready reports whether pilot can serve (model synced, certificates ready).
func Handler(s *xds.Server, g prometheus.Gatherer, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/syncz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Syncz())
	})
	mux.HandleFunc("GET /debug/config_dump", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("proxyID")
		if id == "" {
			http.Error(w, "query parameter proxyID is required, e.g. ?proxyID=sidecar~198.18.0.5~reviews-v1-abc.default~default.svc.cluster.local", http.StatusBadRequest)
			return
		}
		res, err := s.Resources(id)
		if err != nil {
			http.Error(w, fmt.Sprintf("proxyID %q: %v", id, err), http.StatusBadRequest)
			return
		}
		cd, err := res.ConfigDump()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out, err := xds.MarshalConfigDump(cd)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, version.Get())
	})
	// The page `mesh dashboard controlz` opens: what this server answers.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprint(w, "mesh-pilot debug endpoints:\n"+
			"  /debug/syncz             the proxies connected to this replica and what each has ACKed\n"+
			"  /debug/config_dump?proxyID=ID  what this replica sent proxy ID\n"+
			"  /debug/rolloutz          the staged rollouts this replica runs (/history for their steps)\n"+
			"  /debug/mesh              the mesh config this replica serves (the ConfigMap's last valid one)\n"+
			"  /metrics                 Prometheus metrics\n"+
			"  /ready                   readiness\n"+
			"  /version                 build information\n")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
