package resource

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func names(raws []*Raw) string {
	var s []string
	for _, r := range raws {
		s = append(s, fmt.Sprintf("%s/%s@%s", r.Kind(), r.Name(), r.Source))
	}
	return strings.Join(s, " ")
}

func TestReadPathsDirectory(t *testing.T) {
	flat, err := ReadPaths([]string{"testdata/tree"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := "Service/a@testdata/tree/a.yaml:1 ConfigMap/one@testdata/tree/a.yaml:11 ConfigMap/two@testdata/tree/a.yaml:15"
	if got := names(flat); got != want {
		t.Errorf("without -R:\n got %s\nwant %s", got, want)
	}
	deep, err := ReadPaths([]string{"testdata/tree"}, Options{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	want += " Service/b@testdata/tree/sub/b.json:1 Service/c@testdata/tree/sub/b.json:2"
	if got := names(deep); got != want {
		t.Errorf("with -R:\n got %s\nwant %s", got, want)
	}
	if n := deep[4].Object["metadata"].(map[string]any)["labels"].(map[string]any)["n"]; n != int64(3) {
		t.Errorf("JSON number decoded as %T %v, want int64 3", n, n)
	}
	for i, r := range deep {
		if r.Seq != i {
			t.Errorf("object %d has Seq %d", i, r.Seq)
		}
	}
}

func TestReadStdinAndJSONArray(t *testing.T) {
	in := strings.NewReader(`[
  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "y"}}
]`)
	raws, err := ReadPaths([]string{"-"}, Options{Stdin: in})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(raws), "Namespace/x@-:2 Namespace/y@-:3"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestReadJSONListItemLines(t *testing.T) {
	raws, err := ReadBytes("l.json", []byte(`{"apiVersion":"v1","kind":"List",
"items":[
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"q"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(raws), "Pod/p@l.json:3 Pod/q@l.json:4"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestReadErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, data, want string
	}{
		{"bad.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n", "bad.yaml:"},
		{"nokind.yaml", "apiVersion: v1\nkind: Service\n---\n\napiVersion: v1\nmetadata: {}\n", "nokind.yaml:5: object has no kind"},
		{"scalar.yaml", "just a string\n", "scalar.yaml:1: expected a Kubernetes object"},
		{"bad.json", "{\"apiVersion\": \"v1\",\n \"kind\": }", "bad.json:2: invalid JSON"},
		{"list.yaml", "apiVersion: v1\nkind: List\nitems:\n- 3\n", "list.yaml:4: List item 0: expected an object"},
		{"md.yaml", "apiVersion: v1\nkind: Pod\nmetadata: 3\n", "md.yaml:1: Pod: metadata must be an object"},
	}
	for _, c := range cases {
		_, err := ReadBytes(c.name, []byte(c.data))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want a ParseError", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %q, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestReadYAMLAliasesAndMerge(t *testing.T) {
	raws, err := ReadBytes("a.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: &l {a: b}\n  annotations:\n    <<: *l\n    c: d\n"))
	if err != nil {
		t.Fatal(err)
	}
	ann := raws[0].Metadata()["annotations"].(map[string]any)
	if ann["a"] != "b" || ann["c"] != "d" {
		t.Errorf("merge key not applied: %v", ann)
	}
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\napiVersion: v1\nkind: X\n"
	if _, err := ReadBytes("bomb.yaml", []byte(bomb)); err == nil || !strings.Contains(err.Error(), "alias") {
		t.Errorf("alias bomb: got %v, want an alias expansion error", err)
	}
}

func FuzzReadBytes(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod}\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod"}]}`))
	f.Add([]byte(`[{"apiVersion":"v1","kind":"Pod"}] {"apiVersion":"v1","kind":"Pod"}`))
	f.Add([]byte("a: &a [1]\nb: *a\n<<: {apiVersion: v1, kind: X}\n"))
	f.Add([]byte("---\n- 1\n"))
	f.Add([]byte("{\"a\": 1e999}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		raws, err := ReadBytes("fuzz.yaml", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			return
		}
		for _, r := range raws {
			if r.Kind() == "" || r.APIVersion() == "" {
				t.Fatalf("object without kind/apiVersion accepted: %v", r.Object)
			}
			if r.Source.Line < 1 {
				t.Fatalf("object without a line: %v", r.Object)
			}
		}
	})
}

func locatorFor(t *testing.T, data string) *Locator {
	t.Helper()
	idx := NewIndex()
	if _, err := ReadBytesIndexed("-", []byte(data), idx); err != nil {
		t.Fatal(err)
	}
	return NewLocator(idx)
}

func TestLocatorFindsFieldLines(t *testing.T) {
	const doc = "apiVersion: v1\nkind: X\nmetadata:\n  name: a\nspec:\n  http:\n  - route:\n    - destination:\n        host: reviews\n      weight: 5\n  labels:\n    \"a.b/c\": d\n"
	// The same object in block style (walked by indentation) and in flow
	// style (parsed again from the kept text) gives the same lines.
	for _, data := range []string{doc, "# first\n---\n" + doc[:strings.Index(doc, "spec:")] + "spec:\n  http:\n  - route:\n    - destination:\n        host: reviews\n      weight: 5\n  labels: {\"a.b/c\": d}\n"} {
		loc := locatorFor(t, data)
		first := strings.Count(data[:strings.Index(data, "apiVersion")], "\n") + 1
		src := Source{File: "-", Line: first}
		for path, want := range map[string]int{
			"spec.http[0].route[0].destination.host": 9,
			"spec.http[0].route[0].weight":           10,
			"spec.http[3].route":                     6, // deepest field that exists
			"metadata.name":                          4,
			"spec.missing":                           5,
		} {
			if got := loc.Line(src, path); got != want+first-1 {
				t.Errorf("%s: line %d, want %d", path, got, want+first-1)
			}
		}
	}
	loc := locatorFor(t, doc)
	if got := loc.Line(Source{File: "-", Line: 1}, `spec.labels["a.b/c"]`); got != 12 {
		t.Errorf("quoted key: line %d, want 12", got)
	}
	list := locatorFor(t, "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: A\n  metadata:\n    name: x\n- apiVersion: v1\n  kind: B\n  metadata:\n    # note\n\n    name: y\n")
	if got := list.Line(Source{File: "-", Line: 4}, "metadata.name"); got != 7 {
		t.Errorf("List item field: line %d, want 7", got)
	}
	if got := list.Line(Source{File: "-", Line: 8}, "metadata.name"); got != 13 {
		t.Errorf("second List item field: line %d, want 13", got)
	}
	seq := locatorFor(t, "apiVersion: v1\nkind: S\nspec:\n  ports:\n  -\n    name: a\n  - name: b\n    port: 2\n  hosts:\n  - x\n  - y\n")
	for path, want := range map[string]int{"spec.ports[0].name": 6, "spec.ports[1].port": 8, "spec.hosts[1]": 11, "spec.hosts[2]": 9, "spec.ports[1]": 7} {
		if got := seq.Line(Source{File: "-", Line: 1}, path); got != want {
			t.Errorf("%s: line %d, want %d", path, got, want)
		}
	}
}

func TestWalkPathsHandsLargeFilesOverInBatches(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	const n = walkBatch*2 + 7
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c%d\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("# nothing here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var batches, total int
	err := WalkPaths([]string{dir}, Options{}, func(_ int, raws []*Raw) error {
		batches++
		total += len(raws)
		if len(raws) > walkBatch {
			t.Errorf("batch of %d objects, more than %d", len(raws), walkBatch)
		}
		return nil
	})
	if err != nil || total != n || batches != 3 {
		t.Fatalf("%d objects in %d batches (err %v), want %d in 3", total, batches, err, n)
	}
	// An empty file before the large one does not hide it.
	raws, err := ReadPaths([]string{dir}, Options{})
	if err != nil || len(raws) != n || raws[n-1].Name() != fmt.Sprintf("c%d", n-1) {
		t.Fatalf("ReadPaths read %d objects (err %v), want %d in order", len(raws), err, n)
	}
}

func TestMeshConfigAmongInputsNamesTheFlag(t *testing.T) {
	for data, flag := range map[string]string{
		"rootNamespace: istio-system\ndefaultConfig:\n  discoveryAddress: istiod:15012\nenableAutoMtls: true\n": "--meshConfigFile",
		"networks:\n  net1:\n    endpoints:\n    - fromRegistry: Kubernetes\n":                                  "--meshNetworksFile",
	} {
		_, err := ReadBytes("mesh.yaml", []byte(data))
		if err == nil || !strings.Contains(err.Error(), flag) || !strings.Contains(err.Error(), "mesh.yaml:1") {
			t.Errorf("%q: error %v, want one naming mesh.yaml:1 and %s", data, err, flag)
		}
	}
	_, err := ReadBytes("x.yaml", []byte("foo: bar\n"))
	if err == nil || strings.Contains(err.Error(), "meshConfigFile") {
		t.Errorf("a stray document: error %v, want the plain one", err)
	}
}
