// Package installview shows the results of the commands that install
// (install, upgrade, precheck): the progress view, the closing line, why
// objects are not ready, and the precheck report. Deciding is the
// actions' job (internal/install, internal/upgrade); this only prints.
package installview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
	"mesh.dev/mesh/internal/precheck"
)

// Attach shows in's progress on out, until the returned stop is called.
func Attach(in *install.Installer, out io.Writer, color bool) (stop func()) {
	p := NewProgress(out, cli.NewColors(out, color), cli.IsTerminal(out))
	in.Progress = p.Handle
	return p.Close
}

// InstallError explains an installer's failure: a readiness failure gets one
// line per object that is not ready on out and a one-line error saying what
// to do; an interrupted install says what was left.
func InstallError(out io.Writer, color bool, err error) error {
	var nre *kube.NotReadyError
	if errors.As(err, &nre) {
		colors := cli.NewColors(out, color)
		for _, it := range nre.Items {
			fmt.Fprintf(out, "  %s %s: %s\n", colors.Bad("✘"), it.Ref, it.Reason)
		}
		return fmt.Errorf("%d object(s) not ready after %s (listed above); nothing was rolled back, fix the cause and run the command again", len(nre.Items), nre.Timeout)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted: the install stopped part-way; webhooks it added were removed; run it again to finish, or `mesh uninstall` to remove it")
	}
	return err
}

// PrintResult prints an install's closing line to out, or the result as
// json/yaml to stdout when -o asks for it.
func PrintResult(stdout, out io.Writer, color bool, format *cli.Output, res *install.Result) error {
	return format.Write(stdout, res, func() error {
		printClosing(out, cli.NewColors(out, color), res)
		return nil
	})
}

func printClosing(out io.Writer, colors *cli.Colors, res *install.Result) {
	prefix := ""
	if res.DryRun {
		prefix = "Dry run: "
	}
	if !res.Changed() {
		fmt.Fprintf(out, "%s %sNothing to change: all %d objects are already as rendered.\n", colors.OK("✔"), prefix, res.Count())
		return
	}
	counts := map[kube.Action]int{}
	for _, c := range res.Components {
		for a, n := range c.Counts() {
			counts[a] += n
		}
	}
	var parts []string
	for _, a := range []kube.Action{kube.Created, kube.Configured, kube.Unchanged} {
		if counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
		}
	}
	if len(res.Pruned) > 0 {
		parts = append(parts, fmt.Sprintf("%d pruned", len(res.Pruned)))
	}
	verb := "Installation complete"
	if res.DryRun {
		verb = "would apply"
	}
	fmt.Fprintf(out, "%s %s%s: %s.\n", colors.OK("✔"), prefix, verb, strings.Join(parts, ", "))
}

// PrintReport writes one ✔/✘ line per check, with details and the remedy under a failure.
func PrintReport(w io.Writer, colors *cli.Colors, rep *precheck.Report) {
	for _, c := range rep.Checks {
		mark := colors.OK("✔")
		switch {
		case !c.Passed && c.Warning:
			mark = colors.Warn("!")
		case !c.Passed:
			mark = colors.Bad("✘")
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, c.Name, c.Message)
		if c.Passed {
			continue
		}
		for _, d := range c.Details {
			fmt.Fprintf(w, "    - %s\n", d)
		}
		if c.Remedy != "" {
			fmt.Fprintf(w, "    %s %s\n", colors.Bold("fix:"), c.Remedy)
		}
	}
	if rep.Installable {
		fmt.Fprintf(w, "%s\n", colors.OK("The mesh can be installed."))
	} else {
		fmt.Fprintf(w, "%s\n", colors.Bad("The mesh cannot be installed until the failed checks are fixed."))
	}
}
