package debug

import (
	"net/http"

	"mesh.dev/mesh/internal/pilot/rollout"
)

// Rollouts serves the staged releases this replica runs (docs/rollout.md):
// /debug/rolloutz lists every staged resource's state,
// /debug/rolloutz/history?resource=KIND/NAMESPACE/NAME one's steps. Both
// only read: promoting and aborting are not served here.
func Rollouts(m *rollout.Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/rolloutz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, m.Statuses())
	})
	mux.HandleFunc("GET /debug/rolloutz/history", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("resource")
		if id == "" {
			http.Error(w, "query parameter resource is required, e.g. ?resource=VirtualService/default/reviews", http.StatusBadRequest)
			return
		}
		h, err := m.History(id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, h)
	})
	return mux
}
