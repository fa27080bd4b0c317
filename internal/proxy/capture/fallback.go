package capture

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// FallbackComment tags the rules that let a pod's traffic bypass its proxy
// (docs/fallback.md).
const FallbackComment = "mesh-fallback"

// FallbackRules renders, in iptables-restore format, the one transaction
// that stops (on) or resumes (off) the redirection of new connections: a
// RETURN at the head of MESH_INBOUND and MESH_OUTPUT. Connections already
// open keep the decision conntrack recorded for them.
func FallbackRules(on bool) string {
	op := "-D"
	pos := ""
	if on {
		op, pos = "-I", " 1"
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, ch := range []string{"MESH_INBOUND", "MESH_OUTPUT"} {
		fmt.Fprintf(&b, "%s %s%s -m comment --comment %s -j RETURN\n", op, ch, pos, FallbackComment)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// FallbackActive reports whether the fallback rules are in the nat table of
// the namespace prefix runs in (e.g. ["ip", "netns", "exec", "pod"]).
func FallbackActive(ctx context.Context, prefix ...string) (bool, error) {
	args := append(append([]string{}, prefix...), "iptables-save", "-t", "nat")
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	if err != nil {
		return false, fmt.Errorf("iptables-save: %w", err)
	}
	return bytes.Contains(out, []byte("--comment "+FallbackComment)), nil
}

// SetFallback loads FallbackRules(on) with iptables-restore --noflush.
func SetFallback(ctx context.Context, on bool, prefix ...string) error {
	args := append(append([]string{}, prefix...), "iptables-restore", "--noflush")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(FallbackRules(on))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables-restore (fallback %v): %w: %s", on, err, strings.TrimSpace(out.String()))
	}
	return nil
}
