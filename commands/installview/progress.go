package installview

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/install"
	"mesh.dev/mesh/internal/kube"
)

// Progress shows an install's progress, one ✔ or ✘ line per component. On a
// terminal a spinner line shows the component at work; elsewhere plain lines
// say when each component starts waiting, so logs stay readable.
type Progress struct {
	out    io.Writer
	colors *cli.Colors
	tty    bool

	mu      sync.Mutex
	current string
	applied int
	waiting string
	stop    chan struct{}
	done    chan struct{}
}

// NewProgress writes to out; tty turns the spinner on.
func NewProgress(out io.Writer, colors *cli.Colors, tty bool) *Progress {
	return &Progress{out: out, colors: colors, tty: tty}
}

// Handle receives the installer's events.
func (p *Progress) Handle(e install.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Kind {
	case install.ComponentStarted:
		p.current, p.applied, p.waiting = e.Component, 0, ""
		if p.tty {
			p.startSpinner()
		}
	case install.ObjectApplied:
		p.applied++
	case install.ComponentWaiting:
		p.waiting = e.Waiting
		if !p.tty {
			fmt.Fprintf(p.out, "  %s: waiting for %s\n", Title(e.Component), e.Waiting)
		}
	case install.ComponentDone:
		p.stopSpinner()
		fmt.Fprintf(p.out, "%s %s %s\n", p.colors.OK("✔"), Title(e.Component), summary(e.Result))
	case install.ComponentFailed:
		p.stopSpinner()
		fmt.Fprintf(p.out, "%s %s failed\n", p.colors.Bad("✘"), Title(e.Component))
	case install.PruneDone:
		if len(e.Pruned) > 0 {
			fmt.Fprintf(p.out, "%s Pruned %d object(s) the rendering no longer has: %s\n", p.colors.OK("✔"), len(e.Pruned), refList(e.Pruned))
		}
	}
}

// Close stops the spinner, if any.
func (p *Progress) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopSpinner()
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// startSpinner runs with p.mu held.
func (p *Progress) startSpinner() {
	p.stopSpinner()
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	stop, done := p.stop, p.done
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				fmt.Fprint(p.out, "\r\033[K")
				return
			case <-t.C:
				p.mu.Lock()
				what := fmt.Sprintf("applying (%d applied)", p.applied)
				if p.waiting != "" {
					what = "waiting for " + p.waiting
				}
				fmt.Fprintf(p.out, "\r\033[K%s %s: %s", spinnerFrames[n%len(spinnerFrames)], Title(p.current), what)
				p.mu.Unlock()
			}
		}
	}()
}

// stopSpinner runs with p.mu held; it releases the lock while the spinner goroutine finishes.
func (p *Progress) stopSpinner() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	done := p.done
	p.stop, p.done = nil, nil
	p.mu.Unlock()
	<-done
	p.mu.Lock()
}

// Title names a component the way users read it: "base" → "Base", "ingress-gateway.x" → "Ingress gateway x".
func Title(component string) string {
	kind, name, hasName := strings.Cut(component, ".")
	kind = strings.ReplaceAll(kind, "-", " ")
	if kind != "" {
		kind = strings.ToUpper(kind[:1]) + kind[1:]
	}
	if hasName {
		return kind + " " + name
	}
	return kind
}

func summary(r *install.ComponentResult) string {
	if r == nil {
		return ""
	}
	counts := r.Counts()
	if counts[kube.Unchanged] == len(r.Objects) {
		return fmt.Sprintf("unchanged (%d objects)", len(r.Objects))
	}
	var parts []string
	for _, a := range []kube.Action{kube.Created, kube.Configured, kube.Unchanged} {
		if counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
		}
	}
	return "installed (" + strings.Join(parts, ", ") + ")"
}

func refList(refs []kube.Ref) string {
	s := make([]string, 0, len(refs))
	for _, r := range refs {
		s = append(s, r.String())
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
