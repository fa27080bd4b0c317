package analyze

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"

	"k8s.io/client-go/rest"

	"mesh.dev/mesh/internal/resource"
)

// Request says what to analyse and how.
type Request struct {
	// Paths are files, directories and "-" to read.
	Paths     []string
	Recursive bool
	Stdin     io.Reader
	// Cluster, when set, is read first; the files are then applied over it.
	Cluster *rest.Config
	// DefaultNamespace is given to file objects without a namespace.
	DefaultNamespace string
	Filter           Filter
	Analyzers        []Analyzer
	// Mesh is the mesh-wide configuration (--meshConfigFile,
	// --meshNetworksFile); nil means the defaults.
	Mesh *Mesh
}

// Result is what an analysis found.
type Result struct {
	Messages []Message
	// Objects is how many objects were analysed.
	Objects int
}

// Analyze reads the inputs, builds one snapshot and runs the analyzers.
// Input that cannot be parsed comes back as a *resource.ParseError.
func Analyze(ctx context.Context, req Request) (*Result, error) {
	b := NewBuilder(BuildOptions{DefaultNamespace: req.DefaultNamespace})
	if req.Cluster != nil {
		live, err := LoadCluster(ctx, req.Cluster)
		if err != nil {
			return nil, err
		}
		// Cluster objects come first so that files, applied over them, win.
		for i, r := range live {
			r.Seq = -len(live) + i
		}
		if err := b.Add(live); err != nil {
			return nil, err
		}
	}
	var stdin []byte
	for _, p := range req.Paths {
		if p == resource.StdinName && req.Stdin != nil {
			data, err := io.ReadAll(req.Stdin)
			if err != nil {
				return nil, fmt.Errorf("read standard input: %w", err)
			}
			stdin = data
		}
	}
	// The index keeps each file's text and line starts as it is read, so
	// the line of a finding's field is looked up, never read again.
	idx := resource.NewIndex()
	if req.Mesh != nil && req.Mesh.NetworksFile != "" {
		idx.AddDocument(req.Mesh.NetworksFile, req.Mesh.networksText)
	}
	if req.Mesh != nil && req.Mesh.ConfigFile != "" && req.Mesh.configText != nil {
		idx.AddDocument(req.Mesh.ConfigFile, req.Mesh.configText)
	}
	if len(req.Paths) > 0 {
		pool := newDecodePool(b)
		err := resource.WalkPaths(req.Paths, resource.Options{Recursive: req.Recursive, Stdin: bytes.NewReader(stdin), Index: idx},
			func(_ int, raws []*resource.Raw) error { return pool.add(raws) })
		// Decoding errors are of objects handed over before the walk
		// stopped, so one wins over the walk's own parse error.
		if derr := pool.wait(); derr != nil {
			err = derr
		}
		if err != nil {
			return nil, err
		}
	}
	snap := b.Snapshot()
	snap.Mesh = req.Mesh.withClusterConfig(snap)
	msgs := req.Filter.Apply(Run(snap, req.Analyzers))
	loc := resource.NewLocator(idx)
	for i := range msgs {
		if m := &msgs[i]; m.Field != "" && m.Resource.Source.File != "" {
			m.Line = loc.Line(m.Resource.Source, m.Field)
		}
	}
	sort.SliceStable(msgs, func(i, j int) bool {
		a, b := msgs[i].Origin(), msgs[j].Origin()
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	return &Result{Messages: msgs, Objects: len(snap.Resources)}, nil
}

// Describe returns a one-line description of a scope for messages.
func Describe(namespaces map[string]bool, files bool) string {
	switch {
	case namespaces == nil && files:
		return "the given files"
	case namespaces == nil:
		return "all namespaces"
	}
	for ns := range namespaces {
		return fmt.Sprintf("namespace %s", ns)
	}
	return "nothing"
}
