package cmdutil

import (
	"bytes"
	"strings"
	"testing"

	"mesh.dev/mesh/internal/cli"
)

func TestConfirmNeverWaitsWithoutTerminal(t *testing.T) {
	var out bytes.Buffer
	ok, err := Confirm(strings.NewReader("y\n"), &out, "Install?")
	if ok || err == nil || !cli.IsUsage(err) || !strings.Contains(err.Error(), "-y") {
		t.Fatalf("Confirm without a terminal: ok=%v err=%v", ok, err)
	}
	if out.Len() != 0 {
		t.Errorf("asked a question nobody can answer: %q", out.String())
	}
}
