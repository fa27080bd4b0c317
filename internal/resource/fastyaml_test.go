package resource

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// checkSame fails when the fast path accepts data but disagrees with the
// full parser about any object, line or List item line.
func checkSame(t *testing.T, data []byte) (accepted bool) {
	t.Helper()
	fast, ok := fastYAML("f.yaml", data)
	if !ok {
		return false
	}
	slow, err := readYAMLFull("f.yaml", data)
	if err != nil {
		t.Fatalf("fast path accepted input the YAML parser rejects (%v):\n%q", err, data)
	}
	if len(fast) != len(slow) {
		t.Fatalf("fast path found %d documents, YAML parser %d:\n%q", len(fast), len(slow), data)
	}
	for i := range fast {
		if !reflect.DeepEqual(fast[i].Object, slow[i].Object) {
			t.Fatalf("document %d differs:\nfast %#v\nfull %#v\ninput %q", i, fast[i].Object, slow[i].Object, data)
		}
		if fast[i].Source != slow[i].Source {
			t.Fatalf("document %d source %v, YAML parser %v:\n%q", i, fast[i].Source, slow[i].Source, data)
		}
		if len(fast[i].itemLines)+len(slow[i].itemLines) > 0 && !reflect.DeepEqual(fast[i].itemLines, slow[i].itemLines) {
			t.Fatalf("document %d item lines %v, YAML parser %v:\n%q", i, fast[i].itemLines, slow[i].itemLines, data)
		}
	}
	checkSameLines(t, data, fast)
	return true
}

// checkSameLines fails when walking the indentation of block-style data
// finds any field of its objects on another line than the parsed YAML
// nodes do.
func checkSameLines(t *testing.T, data []byte, objs []*Raw) {
	t.Helper()
	var lines []int
	for _, o := range objs {
		lines = append(lines, o.Source.Line)
	}
	idx := NewIndex()
	idx.add("x", data, true, lines)
	block := idx.files["x"]
	parsed := &fileIndex{data: data}
	for _, o := range objs {
		root := parsed.object(o.Source.Line)
		if root == nil {
			t.Fatalf("no parsed object at line %d:\n%q", o.Source.Line, data)
		}
		eachPath(o.Object, nil, func(segs []pathSeg) {
			want, n := o.Source.Line, root
			for _, seg := range segs {
				if n = child(n, seg); n == nil {
					break
				}
				want = n.Line
			}
			if got := block.walk(o.Source.Line, segs); got != want {
				t.Fatalf("path %v of the object at line %d: walk says line %d, parsed YAML %d:\n%q", segs, o.Source.Line, got, want, data)
			}
		})
	}
}

// eachPath calls fn with the path of every field and item under v.
func eachPath(v any, prefix []pathSeg, fn func([]pathSeg)) {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			p := append(append([]pathSeg{}, prefix...), pathSeg{key: k, index: -1})
			fn(p)
			eachPath(c, p, fn)
		}
	case []any:
		for i, c := range t {
			p := append(append([]pathSeg{}, prefix...), pathSeg{index: i})
			fn(p)
			eachPath(c, p, fn)
		}
	}
}

func TestFastYAMLAgreesOnFixtures(t *testing.T) {
	var files []string
	for _, glob := range []string{"testdata/tree/*.yaml", "../../../shared/fixtures/bookinfo/*.yaml", "../../../shared/fixtures/bookinfo/networking/*.yaml", "../../commands/analyze/testdata/broken/*.yaml"} {
		m, _ := filepath.Glob(glob)
		files = append(files, m...)
	}
	accepted := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if checkSame(t, data) {
			accepted++
		}
	}
	if len(files) > 3 && accepted < len(files)/2 {
		t.Errorf("fast path took only %d of %d plain manifests", accepted, len(files))
	}
}

func TestFastYAMLGivesUpOnTheUnusual(t *testing.T) {
	for _, s := range []string{
		"a: &x 1\nb: *x\n", "a: |\n  text\n", "a: {b: 1}\n", "a: [1, 2]\n", "a: !!str 1\n",
		"a: multi\n  line\n", "- 1\n", "a: \"\\u00e9\"\n", "a:\tb\n", "%YAML 1.2\n---\na: 1\n", "<<: {a: 1}\n",
	} {
		if _, ok := fastYAML("f", []byte(s)); ok {
			t.Errorf("fast path accepted %q", s)
		}
	}
	for _, s := range []string{
		"a: 1\nb: [] # none\nc: {}\nd: 'it''s'\ne: \"x\\ty\"\nf: ~\ng: 0x1F\nh: 1.5e3\ni: True\nj: 2001-12-14\nk: no\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: A\n-\n  apiVersion: v1\n  kind: B\n",
		"a:\n- x\n- y: 1\n  z: 2\nb: c # comment\n",
	} {
		if !checkSame(t, []byte(s)) {
			t.Errorf("fast path gave up on %q", s)
		}
	}
}

func FuzzFastYAML(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  labels: {}\nspec:\n  ports:\n  - name: http\n    port: 80\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n"))
	f.Add([]byte("a:\n- x\n- y: 1\n  z: '2'\nb: \"c\" # d\n"))
	f.Add([]byte("a: 1\n  b: 2\n"))
	f.Add([]byte("- a\n- b: c\n"))
	f.Add([]byte("a: -1\nb: .5\nc: 1_000\nd: 0o17\ne: +.inf\nf: null\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSame(t, data)
	})
}
