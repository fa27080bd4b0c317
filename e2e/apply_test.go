package e2e

import (
	"context"

	"mesh.dev/mesh/internal/sandbox/demo"
)

// apply does what `kubectl apply --server-side -n ns -f -` does with a
// manifest stream (demo.Apply), failing the test on an error.
func (e *env) apply(ns string, manifest []byte) {
	e.t.Helper()
	if err := demo.Apply(context.Background(), e.c.RESTConfig(), ns, manifest); err != nil {
		e.t.Fatal(err)
	}
}
