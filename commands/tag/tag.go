// Package tag holds `mesh tag set|list|remove`: revision tags, names that
// namespaces point at (label mesh.io/rev=<tag>) and that map to a revision.
package tag

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"mesh.dev/mesh/commands/cmdutil"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// NewCommand builds `mesh tag` and its subcommands.
func NewCommand(ctx *cli.Context) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tag",
		Short: "Point revision tags (namespace labels) at control plane revisions",
		Long: `A revision tag is a stable name for a control plane revision. Namespaces
labelled mesh.io/rev=<tag> get their sidecars from the revision the tag points
at, so moving workloads to a new revision is one ` + "`mesh tag set`" + ` and a
rollout restart, without relabelling every namespace.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSetCommand(ctx), newListCommand(ctx), newRemoveCommand(ctx))
	return cmd
}

// SetOptions are the flags of `mesh tag set`.
type SetOptions struct {
	*cli.Context
	Tag       string
	Revision  string
	Overwrite bool
	client    *kube.Client
}

func newSetCommand(ctx *cli.Context) *cobra.Command {
	o := &SetOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:     "set TAG --revision REVISION",
		Short:   "Create or move a revision tag",
		Example: "  mesh tag set prod --revision canary\n  kubectl label namespace shop mesh.io/rev=prod",
		Args:    cobra.ExactArgs(1),
		RunE:    cmdutil.Run(o),
	}
	cmd.Flags().Var(cli.NewRevision(&o.Revision, true), "revision", "the installed revision the tag points at (required)")
	cmd.Flags().BoolVar(&o.Overwrite, "overwrite", false, "move a tag that already points at another revision")
	return cmd
}

// Complete takes the tag and builds the cluster client.
func (o *SetOptions) Complete(_ *cobra.Command, args []string) error {
	o.Tag = args[0]
	var err error
	o.client, err = kube.FromCLI(o.Context)
	return err
}

// Validate checks the tag name and that a revision was given.
func (o *SetOptions) Validate() error {
	if o.Revision == "" {
		return cli.Usagef("--revision is required: the installed revision the tag %q points at", o.Tag)
	}
	if err := install.ValidateTagName(o.Tag); err != nil {
		return cli.Usage(err)
	}
	return nil
}

// Run points the tag at the revision.
func (o *SetOptions) Run(ctx context.Context) error {
	if _, err := o.client.ServerVersion(ctx); err != nil {
		return err
	}
	t, err := install.SetTag(ctx, o.client, o.Tag, o.Revision, o.Overwrite)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "%s Tag %s points at revision %s", cli.NewColors(o.Out, o.Color).OK("✔"), t.Tag, t.Revision)
	if len(t.Namespaces) > 0 {
		fmt.Fprintf(o.Out, "; namespaces using it: %v (restart their workloads to move them)", t.Namespaces)
	}
	fmt.Fprintln(o.Out)
	return nil
}

// ListOptions are the flags of `mesh tag list`.
type ListOptions struct {
	*cli.Context
	Output *cli.Output
	client *kube.Client
}

func newListCommand(ctx *cli.Context) *cobra.Command {
	o := &ListOptions{Context: ctx, Output: cli.Structured()}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List revision tags, their revisions and the namespaces that use them",
		Args:  cobra.NoArgs,
		RunE:  cmdutil.Run(o),
	}
	cmdutil.AddOutputFlag(cmd, o.Output, "")
	return cmd
}

// Complete builds the cluster client.
func (o *ListOptions) Complete(*cobra.Command, []string) error {
	var err error
	o.client, err = kube.FromCLI(o.Context)
	return err
}

// Validate has nothing to check beyond what the flags checked when parsed.
func (o *ListOptions) Validate() error { return nil }

// Run prints the tags.
func (o *ListOptions) Run(ctx context.Context) error {
	if _, err := o.client.ServerVersion(ctx); err != nil {
		return err
	}
	list, err := install.ListTags(ctx, o.client)
	if err != nil {
		return err
	}
	if list == nil {
		list = []install.Tag{}
	}
	return o.Output.Write(o.Out, list, func() error { return o.print(list) })
}

func (o *ListOptions) print(list []install.Tag) error {
	if len(list) == 0 {
		fmt.Fprintln(o.Out, "No revision tags. Create one with `mesh tag set TAG --revision REVISION`.")
		return nil
	}
	tw := cli.NewTable(o.Out)
	fmt.Fprintln(tw, "TAG\tREVISION\tNAMESPACES")
	for _, t := range list {
		ns := "-"
		if len(t.Namespaces) > 0 {
			ns = fmt.Sprint(t.Namespaces)
			ns = ns[1 : len(ns)-1]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Tag, t.Revision, ns)
	}
	return tw.Flush()
}

// RemoveOptions are the flags of `mesh tag remove`.
type RemoveOptions struct {
	*cli.Context
	Tag    string
	Yes    bool
	client *kube.Client
}

func newRemoveCommand(ctx *cli.Context) *cobra.Command {
	o := &RemoveOptions{Context: ctx}
	cmd := &cobra.Command{
		Use:   "remove TAG",
		Short: "Remove a revision tag",
		Args:  cobra.ExactArgs(1),
		RunE:  cmdutil.Run(o),
	}
	cmd.Flags().BoolVarP(&o.Yes, "skip-confirmation", "y", false, "remove the tag even while namespaces still use it")
	return cmd
}

// Complete takes the tag and builds the cluster client.
func (o *RemoveOptions) Complete(_ *cobra.Command, args []string) error {
	o.Tag = args[0]
	var err error
	o.client, err = kube.FromCLI(o.Context)
	return err
}

// Validate checks the tag name.
func (o *RemoveOptions) Validate() error { return cli.Usage(install.ValidateTagName(o.Tag)) }

// Run removes the tag; while namespaces use it, only with -y.
func (o *RemoveOptions) Run(ctx context.Context) error {
	c := o.client
	if _, err := c.ServerVersion(ctx); err != nil {
		return err
	}
	t, err := install.GetTag(ctx, c, o.Tag)
	if err != nil {
		return err
	}
	if len(t.Namespaces) > 0 && !o.Yes {
		return fmt.Errorf("tag %s is still used by namespaces %v: new pods there would get no sidecar; relabel them, or pass -y to remove the tag anyway", o.Tag, t.Namespaces)
	}
	if err := install.RemoveTag(ctx, c, o.Tag); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "%s Removed tag %s (it pointed at revision %s)\n", cli.NewColors(o.Out, o.Color).OK("✔"), t.Tag, t.Revision)
	return nil
}
