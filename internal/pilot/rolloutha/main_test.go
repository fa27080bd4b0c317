// Package rolloutha_test runs pilot replicas stepping one rollout on a
// sandbox cluster of their own: the test counts proxies and Events, which
// other tests' objects in a shared cluster would change.
package rolloutha_test

import (
	"testing"

	"mesh.dev/mesh/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }
