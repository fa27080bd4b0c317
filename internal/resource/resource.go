// Package resource reads Kubernetes-style objects from files, directories and
// standard input, keeping the file and line each object came from.
package resource

import (
	"fmt"
	"strings"
)

// Source says where an object was read from.
type Source struct {
	// File is the path as given (or found under a directory), "-" for standard
	// input, and empty for objects read from a cluster.
	File string `json:"file,omitempty"`
	// Line is the 1-based line where the object starts; 0 when unknown.
	Line int `json:"line,omitempty"`
}

// String renders the source as file:line, or "" for cluster objects.
func (s Source) String() string {
	if s.File == "" {
		return ""
	}
	if s.Line == 0 {
		return s.File
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// Raw is one object as read, before it is decoded into a typed struct.
type Raw struct {
	Object map[string]any
	Source Source
	// Seq orders objects by the position they were read in, so a later
	// object with the same kind, namespace and name replaces an earlier one.
	Seq int
	// itemLines holds the line of each item when the object is a List.
	itemLines []int
}

// APIVersion returns the object's apiVersion.
func (r *Raw) APIVersion() string { s, _ := r.Object["apiVersion"].(string); return s }

// Kind returns the object's kind.
func (r *Raw) Kind() string { s, _ := r.Object["kind"].(string); return s }

// Group returns the API group of the object's apiVersion ("" for the core group).
func (r *Raw) Group() string {
	g, _, ok := strings.Cut(r.APIVersion(), "/")
	if !ok {
		return ""
	}
	return g
}

// Metadata returns the object's metadata map (nil when missing).
func (r *Raw) Metadata() map[string]any { m, _ := r.Object["metadata"].(map[string]any); return m }

// Name returns metadata.name.
func (r *Raw) Name() string { s, _ := r.Metadata()["name"].(string); return s }

// Namespace returns metadata.namespace.
func (r *Raw) Namespace() string { s, _ := r.Metadata()["namespace"].(string); return s }

// SetNamespace sets metadata.namespace, creating metadata when needed.
func (r *Raw) SetNamespace(ns string) {
	md := r.Metadata()
	if md == nil {
		md = map[string]any{}
		r.Object["metadata"] = md
	}
	md["namespace"] = ns
}

// ParseError is input that cannot be read as Kubernetes objects; it names the
// file and line so the user can fix it.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("%s: %v", loc, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }
