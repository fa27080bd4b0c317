package resource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// StdinName is the path that means standard input.
const StdinName = "-"

// Options control how paths are read.
type Options struct {
	// Recursive descends into subdirectories of directory arguments.
	Recursive bool
	// Stdin is read when a path is "-".
	Stdin io.Reader
	// Index, when set, records every file read, for finding the lines of
	// fields later (see Locator).
	Index *Index
}

// manifestExt reports whether a file found inside a directory is read; files
// named explicitly are read whatever their extension.
func manifestExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// ExpandPaths turns files and directories into the list of files to read, in
// a stable order: arguments in the order given, directory contents sorted.
func ExpandPaths(paths []string, recursive bool) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p == StdinName {
			out = append(out, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			if manifestExt(d.Name()) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", p, err)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// ReadPaths reads every object in paths (files, directories, "-"). Files are
// parsed in parallel; the result keeps the order the paths name them in, and
// each object's Seq is its position.
func ReadPaths(paths []string, opts Options) ([]*Raw, error) {
	var mu sync.Mutex
	byFile := map[int][]*Raw{}
	err := WalkPaths(paths, opts, func(i int, raws []*Raw) error {
		mu.Lock()
		byFile[i] = append(byFile[i], raws...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	files := make([]int, 0, len(byFile))
	for i := range byFile {
		files = append(files, i)
	}
	sort.Ints(files)
	var out []*Raw
	for _, i := range files {
		out = append(out, byFile[i]...)
	}
	for i, r := range out {
		r.Seq = i
	}
	return out, nil
}

// walkBatch is how many objects WalkPaths hands over at a time: a large
// file is decoded and dropped as it is parsed, not held whole. mesh
// analyze decodes batches on other goroutines while parsing goes on, so a
// few are alive at once: at 256 that held about 3 MiB more at the peak of
// a 10k-resource file than at 64, and handing over four times as often
// costs nothing measurable.
const walkBatch = 64

// WalkPaths parses the files named by paths in parallel and hands their
// objects to visit, from the parsing goroutine, in batches as they are
// parsed, with the file's position among all files. Objects' Seq numbers
// order them across files. visit may run concurrently for different
// files; the first error stops the walk and is returned.
func WalkPaths(paths []string, opts Options, visit func(file int, raws []*Raw) error) error {
	files, err := ExpandPaths(paths, opts.Recursive)
	if err != nil {
		return err
	}
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	next := make(chan int)
	workers := min(runtime.GOMAXPROCS(0), max(len(files), 1))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				j := 0
				batch := make([]*Raw, 0, walkBatch)
				err := readFile(files[i], opts.Stdin, opts.Index, func(r *Raw) error {
					r.Seq = i<<24 | j
					j++
					batch = append(batch, r)
					if len(batch) < walkBatch {
						return nil
					}
					err := visit(i, batch)
					batch = make([]*Raw, 0, walkBatch)
					return err
				})
				if err == nil && len(batch) > 0 {
					err = visit(i, batch)
				}
				errs[i] = err
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func readFile(path string, stdin io.Reader, idx *Index, emit func(*Raw) error) error {
	var data []byte
	var err error
	switch {
	case path == StdinName:
		if stdin == nil {
			return errors.New("read standard input: no input stream")
		}
		data, err = io.ReadAll(stdin)
	case idx != nil:
		// A file kept for the index is mapped rather than read: its text
		// then lives in the page cache, not in the heap, where it would
		// also double the collector's target.
		var mapped bool
		if data, mapped, err = mapFile(path); err == nil && mapped {
			err = readBytes(path, data, idx, emit)
			release(data)
			return err
		}
	default:
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return readBytes(path, data, idx, emit)
}

// ReadBytes parses data named name as YAML (one or more documents) or JSON
// (one or more values, or an array of objects). Lists are expanded into
// their items.
func ReadBytes(name string, data []byte) ([]*Raw, error) { return ReadBytesIndexed(name, data, nil) }

// ReadBytesIndexed is ReadBytes that also records data in idx.
func ReadBytesIndexed(name string, data []byte, idx *Index) ([]*Raw, error) {
	var out []*Raw
	err := readBytes(name, data, idx, func(r *Raw) error { out = append(out, r); return nil })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readBytes parses data and hands emit each object, Lists expanded, as it
// is parsed.
func readBytes(name string, data []byte, idx *Index, emit func(*Raw) error) error {
	var lines []int // where the emitted objects start, for the index
	if idx != nil {
		next := emit
		emit = func(r *Raw) error {
			lines = append(lines, r.Source.Line)
			return next(r)
		}
	}
	emitAll := func(raws []*Raw) error {
		out, err := expandLists(name, raws)
		if err != nil {
			return err
		}
		for _, r := range out {
			if err := emit(r); err != nil {
				return err
			}
		}
		return nil
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		raws, err := readJSON(name, data)
		if err == nil {
			idx.add(name, data, false, nil)
			return emitAll(raws)
		}
		// YAML flow style also starts with { or [; if the data reads as
		// YAML objects, it was YAML. Otherwise the JSON error is the one
		// that helps.
		if yraws, block, yerr := readYAML(name, data); yerr == nil {
			if out, xerr := expandLists(name, yraws); xerr == nil {
				idx.add(name, data, block, lines)
				for _, r := range out {
					if err := emit(r); err != nil {
						return err
					}
				}
				return nil
			}
		}
		return err
	}
	var one [1]*Raw
	block, err := readYAMLEach(name, data, func(r *Raw) error {
		one[0] = r
		return emitAll(one[:])
	})
	if err != nil {
		return err
	}
	idx.add(name, data, block, lines)
	return nil
}

// expandLists replaces each List object with its items and checks every
// object names its apiVersion and kind.
func expandLists(name string, in []*Raw) ([]*Raw, error) {
	out := make([]*Raw, 0, len(in))
	for _, r := range in {
		if err := checkObject(name, r); err != nil {
			return nil, err
		}
		items, isList := r.Object["items"]
		if !isList || !strings.HasSuffix(r.Kind(), "List") {
			out = append(out, r)
			continue
		}
		arr, ok := items.([]any)
		if !ok && items != nil {
			return nil, &ParseError{File: name, Line: r.Source.Line, Err: fmt.Errorf("%s: items must be a list of objects", r.Kind())}
		}
		lines := r.itemLines
		for i, it := range arr {
			m, ok := it.(map[string]any)
			line := r.Source.Line
			if i < len(lines) {
				line = lines[i]
			}
			if !ok {
				return nil, &ParseError{File: name, Line: line, Err: fmt.Errorf("%s item %d: expected an object", r.Kind(), i)}
			}
			item := &Raw{Object: m, Source: Source{File: name, Line: line}}
			if err := checkObject(name, item); err != nil {
				return nil, err
			}
			out = append(out, item)
		}
	}
	return out, nil
}

func checkObject(name string, r *Raw) error {
	var missing []string
	if r.APIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if r.Kind() == "" {
		missing = append(missing, "kind")
	}
	if len(missing) > 0 {
		if hint := meshFileHint(r.Object); hint != "" {
			return &ParseError{File: name, Line: r.Source.Line, Err: errors.New(hint)}
		}
		return &ParseError{File: name, Line: r.Source.Line, Err: fmt.Errorf("object has no %s (a string): every document must be a Kubernetes object", strings.Join(missing, " or "))}
	}
	if md, ok := r.Object["metadata"]; ok && md != nil {
		if _, ok := md.(map[string]any); !ok {
			return &ParseError{File: name, Line: r.Source.Line, Err: fmt.Errorf("%s: metadata must be an object", r.Kind())}
		}
	}
	return nil
}
