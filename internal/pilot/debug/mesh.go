package debug

import (
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// Mesh serves /debug/mesh: the mesh config this replica serves now (the
// ConfigMap's last valid one), in MeshConfig's JSON.
func Mesh(current func() *meshconfig.MeshConfig) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/mesh", func(w http.ResponseWriter, _ *http.Request) {
		out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(current())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	return mux
}
