package render

import (
	"fmt"
	"io/fs"
	"path"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"

	"mesh.dev/mesh/manifests"
)

var (
	chartsOnce sync.Once
	charts     map[string]*chart.Chart
	chartsErr  error
)

// Chart returns one embedded chart, loaded once per process.
func Chart(name string) (*chart.Chart, error) {
	chartsOnce.Do(func() {
		charts = map[string]*chart.Chart{}
		for _, n := range []string{manifests.Base, manifests.Pilot, manifests.Gateways} {
			c, err := loadEmbedded(n)
			if err != nil {
				chartsErr = fmt.Errorf("load embedded chart %s: %w", n, err)
				return
			}
			charts[n] = c
		}
	})
	if chartsErr != nil {
		return nil, chartsErr
	}
	c, ok := charts[name]
	if !ok {
		return nil, fmt.Errorf("no embedded chart %q", name)
	}
	return c, nil
}

func loadEmbedded(name string) (*chart.Chart, error) {
	root := manifests.Charts()
	var files []*loader.BufferedFile
	err := fs.WalkDir(root, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		rel, _ := relPath(name, p)
		files = append(files, &loader.BufferedFile{Name: rel, Data: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(files)
}

func relPath(base, p string) (string, bool) {
	rel := path.Clean(p)[len(base)+1:]
	return rel, true
}
