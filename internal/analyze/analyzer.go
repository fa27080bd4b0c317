package analyze

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mesh.dev/mesh/internal/resource"
)

// Analyzer inspects a snapshot and reports what it finds.
type Analyzer interface {
	// Metadata describes the analyzer for --list-analyzers.
	Metadata() Metadata
	// Analyze reports messages through ctx.
	Analyze(ctx *Context)
}

// Metadata describes an analyzer.
type Metadata struct {
	Name        string
	Description string
	Codes       []*MessageType
}

// Message is one finding about one resource.
type Message struct {
	Type     *MessageType
	Resource *Resource
	// Field is the path of the field concerned, when there is one.
	Field string
	Text  string
	// Line is the line of Field in the resource's file, when known; 0
	// means the resource's own line.
	Line int
}

// Context is what an analyzer sees: the snapshot and a way to report.
type Context struct {
	*Snapshot
	messages []Message
}

// Report records a message about r; field may be empty.
func (c *Context) Report(t *MessageType, r *Resource, field, format string, args ...any) {
	c.messages = append(c.messages, Message{Type: t, Resource: r, Field: field, Text: fmt.Sprintf(format, args...)})
}

// Run runs every analyzer over the snapshot and returns their messages,
// sorted by file, line, code and resource. Analyzers only read the
// snapshot, so they run side by side, one per core; each reports into its
// own Context and the messages are joined in analyzer order, so the result
// is the same as running them one after another.
func Run(s *Snapshot, analyzers []Analyzer) []Message {
	found := make([][]Message, len(analyzers))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(analyzers)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(analyzers) {
					return
				}
				found[i] = runOne(s, analyzers[i])
			}
		}()
	}
	wg.Wait()
	var msgs []Message
	for _, m := range found {
		msgs = append(msgs, m...)
	}
	sort.SliceStable(msgs, func(i, j int) bool { return less(msgs[i], msgs[j]) })
	return dedupe(msgs)
}

// runOne runs one analyzer. An analyzer that panics is a bug in mesh, not
// in the configuration: it is reported as IST0001 (as Istio reports its
// own internal errors) and the other analyzers' findings still count.
func runOne(s *Snapshot, a Analyzer) (msgs []Message) {
	ctx := &Context{Snapshot: s}
	defer func() {
		if p := recover(); p != nil {
			name := a.Metadata().Name
			r := &Resource{Kind: "Analyzer", Name: name, Meta: &metav1.ObjectMeta{Name: name}}
			msgs = append(ctx.messages, Message{Type: InternalError, Resource: r,
				Text: fmt.Sprintf("Internal error: analyzer %s failed (%v); its findings may be incomplete. Please report this as a bug in mesh.", name, p)})
		}
	}()
	a.Analyze(ctx)
	return ctx.messages
}

func less(a, b Message) bool {
	sa, sb := a.Resource.Source, b.Resource.Source
	if sa.File != sb.File {
		return sa.File < sb.File
	}
	if sa.Line != sb.Line {
		return sa.Line < sb.Line
	}
	if ra, rb := a.Resource.Ref(), b.Resource.Ref(); ra != rb {
		return ra < rb
	}
	if a.Type.Code != b.Type.Code {
		return a.Type.Code < b.Type.Code
	}
	if a.Field != b.Field {
		return a.Field < b.Field
	}
	return a.Text < b.Text
}

func dedupe(msgs []Message) []Message {
	out := msgs[:0]
	for i, m := range msgs {
		if i > 0 {
			p := msgs[i-1]
			if p.Type == m.Type && p.Resource == m.Resource && p.Field == m.Field && p.Text == m.Text {
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// Origin returns the file and line a message points at (empty for cluster
// objects): the field's line when known, else the resource's.
func (m Message) Origin() resource.Source {
	src := m.Resource.Source
	if m.Line > 0 && src.File != "" {
		src.Line = m.Line
	}
	return src
}

// String renders the message in the log format without colour.
func (m Message) String() string {
	return fmt.Sprintf("%s [%s] (%s) %s", m.Type.Level, m.Type.Code, m.where(), m.Text)
}

func (m Message) where() string {
	w := m.Resource.Ref()
	if src := m.Origin().String(); src != "" {
		w += " " + src
	}
	return w
}
