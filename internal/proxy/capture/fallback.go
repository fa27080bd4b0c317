package capture

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// FallbackComment tags the rules that let a pod's traffic bypass its proxy
// (docs/fallback.md).
const FallbackComment = "mesh-fallback"

// FallbackChain holds, while a pod is in fallback, the outbound
// destinations that stay captured (they require mTLS, which only the proxy
// speaks): a jump to MESH_REDIRECT for each. MESH_OUTPUT jumps to it after
// its exclusions of the proxy's own traffic and of loopback, and RETURNs
// right after for every other destination: direct, past the capture, to
// whatever OUTPUT holds after MESH_OUTPUT (Service rules in the sandbox).
const FallbackChain = "MESH_FALLBACK"

// FallbackRules renders, in iptables-restore format, the one transaction
// that stops (on) or resumes (off) the redirection of new connections: a
// RETURN at the head of MESH_INBOUND, and in MESH_OUTPUT at rule number
// at (after the proxy's and loopback's exclusions) a jump to FallbackChain
// then a RETURN. keep are the destination addresses whose new connections
// stay captured; with active (the rules are already in place) on only
// replaces them. Connections already open keep the decision conntrack
// recorded for them.
//
// With dns (the pod's DNS is redirected to the proxy, chain MESH_DNS) the
// app's DNS over UDP goes straight to its resolvers too; over TCP it
// follows the MESH_OUTPUT RETURN.
func FallbackRules(on, active, dns bool, at int, keep []netip.Addr) string {
	var b strings.Builder
	w := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	w("*nat")
	if on {
		w(":%s - [0:0]", FallbackChain) // declared: created, or emptied when it exists
		for _, a := range keep {
			w("-A %s -d %s -j MESH_REDIRECT", FallbackChain, netip.PrefixFrom(a, a.BitLen()))
		}
		if !active {
			w("-I MESH_INBOUND 1 -m comment --comment %s -j RETURN", FallbackComment)
			w("-I MESH_OUTPUT %d -m comment --comment %s -j RETURN", at, FallbackComment)
			w("-I MESH_OUTPUT %d -m comment --comment %s -j %s", at, FallbackComment, FallbackChain)
			if dns {
				w("-I MESH_DNS 1 -m comment --comment %s -j RETURN", FallbackComment)
			}
		}
	} else {
		w("-D MESH_INBOUND -m comment --comment %s -j RETURN", FallbackComment)
		w("-D MESH_OUTPUT -m comment --comment %s -j %s", FallbackComment, FallbackChain)
		w("-D MESH_OUTPUT -m comment --comment %s -j RETURN", FallbackComment)
		if dns {
			w("-D MESH_DNS -m comment --comment %s -j RETURN", FallbackComment)
		}
		w("-F %s", FallbackChain)
		w("-X %s", FallbackChain)
	}
	w("COMMIT")
	return b.String()
}

// FallbackActive reports whether the fallback rules are in the nat table of
// the namespace prefix runs in (e.g. ["ip", "netns", "exec", "pod"]).
func FallbackActive(ctx context.Context, prefix ...string) (bool, error) {
	out, err := natTable(ctx, prefix...)
	if err != nil {
		return false, err
	}
	return bytes.Contains(out, []byte("--comment "+FallbackComment)), nil
}

func natTable(ctx context.Context, prefix ...string) ([]byte, error) {
	args := append(append([]string{}, prefix...), "iptables-save", "-t", "nat")
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	if err != nil {
		return nil, fmt.Errorf("iptables-save: %w", err)
	}
	return out, nil
}

// fallbackAt is the MESH_OUTPUT rule number the fallback rules go in at:
// after the last rule that lets the proxy's own connections (its user or
// group) or loopback through, so those stay as they are.
func fallbackAt(nat []byte) int {
	at, n := 1, 0
	for _, l := range strings.Split(string(nat), "\n") {
		if !strings.HasPrefix(l, "-A MESH_OUTPUT ") {
			continue
		}
		n++
		if strings.Contains(l, "--uid-owner") || strings.Contains(l, "--gid-owner") || strings.Contains(l, "-d 127.0.0.1/32") {
			at = n + 1
		}
	}
	return at
}

// SetFallback loads FallbackRules with iptables-restore --noflush: on
// (keeping keep captured), again on to replace keep, or off.
func SetFallback(ctx context.Context, on bool, keep []netip.Addr, prefix ...string) error {
	nat, err := natTable(ctx, prefix...)
	if err != nil {
		return err
	}
	active := bytes.Contains(nat, []byte("--comment "+FallbackComment))
	if !on && !active {
		return nil
	}
	args := append(append([]string{}, prefix...), "iptables-restore", "--noflush")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	dns := bytes.Contains(nat, []byte("\n:MESH_DNS "))
	cmd.Stdin = strings.NewReader(FallbackRules(on, active, dns, fallbackAt(nat), keep))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables-restore (fallback %v): %w: %s", on, err, strings.TrimSpace(out.String()))
	}
	return nil
}
