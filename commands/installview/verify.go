package installview

import (
	"fmt"
	"io"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
)

// PrintVerify writes verify-install's findings, or one ✔ line when there are none.
func PrintVerify(w io.Writer, colors *cli.Colors, r *install.VerifyResult) {
	if r.Clean() {
		fmt.Fprintf(w, "%s All %d objects of revision %s are installed as rendered and ready.\n", colors.OK("✔"), r.Checked, r.Revision)
		return
	}
	for _, m := range r.Missing {
		fmt.Fprintf(w, "%s missing: %s\n", colors.Bad("✘"), m)
	}
	for _, d := range r.Drifted {
		fmt.Fprintf(w, "%s drifted: %s\n", colors.Bad("✘"), d.Ref)
		for _, f := range d.Fields {
			fmt.Fprintf(w, "    %s: want %s, got %s\n", f.Path, show(f.Want), show(f.Got))
		}
	}
	for _, n := range r.NotReady {
		fmt.Fprintf(w, "%s not ready: %s: %s\n", colors.Bad("✘"), n.Ref, n.Reason)
	}
	for _, e := range r.Extra {
		fmt.Fprintf(w, "%s not in the rendering (an install would prune it): %s\n", colors.Warn("!"), e)
	}
	fmt.Fprintf(w, "%d of %d objects missing, %d drifted, %d not ready, %d extra.\n",
		len(r.Missing), r.Checked, len(r.Drifted), len(r.NotReady), len(r.Extra))
}

func show(v any) string {
	if v == nil {
		return "(unset)"
	}
	s := fmt.Sprintf("%v", v)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
