// Package manifest reads, orders, prints and compares Kubernetes objects.
package manifest

import (
	"bytes"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Document is one YAML document of a stream and the line it starts on.
type Document struct {
	Line int
	Text []byte
}

// SplitDocuments cuts a YAML stream at its "---" separators, dropping
// documents that hold only comments or whitespace.
func SplitDocuments(data []byte) []Document {
	var docs []Document
	line, start, startLine := 1, 0, 1
	emit := func(end int) {
		text := data[start:end]
		if !blank(text) {
			docs = append(docs, Document{Line: startLine, Text: text})
		}
	}
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '\n')
		end := len(data)
		if j >= 0 {
			end = i + j
		}
		l := data[i:end]
		if bytes.HasPrefix(l, []byte("---")) && len(bytes.TrimSpace(l[3:])) == 0 {
			emit(i)
			start, startLine = min(end+1, len(data)), line+1
		}
		line++
		i = end + 1
	}
	if start < len(data) {
		emit(len(data))
	}
	return docs
}

func blank(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

// Parse reads every object of a YAML stream; source names the stream in errors.
func Parse(source string, data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, d := range SplitDocuments(data) {
		obj, err := ParseObject(d.Text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, d.Line+innerLine(err)-min(innerLine(err), 1), err)
		}
		if obj == nil {
			continue
		}
		if obj.IsList() {
			items, _ := obj.ToList()
			for i := range items.Items {
				out = append(out, &items.Items[i])
			}
			continue
		}
		out = append(out, obj)
	}
	return out, nil
}

// innerLine pulls "line N" out of a YAML error so it can be made file-relative.
func innerLine(err error) int {
	var n int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i+5:], "%d", &n)
	}
	return n
}

// ParseObject reads one YAML document into an object; it returns nil for a
// document that is null.
func ParseObject(doc []byte) (*unstructured.Unstructured, error) {
	js, isJSON := jsonBody(doc)
	if !isJSON {
		var err error
		if js, err = yaml.YAMLToJSON(doc); err != nil {
			return nil, err
		}
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, nil
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(js); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	return obj, nil
}

// jsonBody returns the document without leading comment lines and whether
// it is a JSON object, which decodes far faster than through YAML.
func jsonBody(doc []byte) ([]byte, bool) {
	for len(doc) > 0 {
		doc = bytes.TrimLeft(doc, " \t\r\n")
		if len(doc) == 0 || doc[0] != '#' {
			break
		}
		if i := bytes.IndexByte(doc, '\n'); i >= 0 {
			doc = doc[i+1:]
		} else {
			doc = nil
		}
	}
	return doc, len(doc) > 0 && doc[0] == '{'
}
