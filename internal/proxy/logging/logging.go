// Package logging gives mesh-proxy Envoy's named loggers: each part of the
// proxy logs through a logger called as Envoy calls it (http, router,
// upstream, config, ...), and each logger has its own level, which the admin
// API's /logging endpoint reads and changes at run time.
package logging

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// Level is one of Envoy's log levels.
type Level int32

// Envoy's levels, most verbose first.
const (
	Trace Level = iota
	Debug
	Info
	Warning
	Error
	Critical
	Off
)

var levelNames = []string{"trace", "debug", "info", "warning", "error", "critical", "off"}

// LevelNames lists the level names /logging accepts, most verbose first.
func LevelNames() []string { return slices.Clone(levelNames) }

// String returns the level's Envoy name.
func (l Level) String() string {
	if l < Trace || l > Off {
		return fmt.Sprintf("level(%d)", int32(l))
	}
	return levelNames[l]
}

// ParseLevel reads an Envoy level name; "warn" is taken for "warning".
func ParseLevel(s string) (Level, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "warn" {
		return Warning, nil
	}
	if i := slices.Index(levelNames, s); i >= 0 {
		return Level(i), nil
	}
	return 0, fmt.Errorf("unknown level %q: want one of %s", s, strings.Join(levelNames, ", "))
}

// slogLevel is the slog level a record must reach to pass a logger at l.
func (l Level) slogLevel() slog.Level {
	switch l {
	case Trace:
		return slog.LevelDebug - 4
	case Debug:
		return slog.LevelDebug
	case Info:
		return slog.LevelInfo
	case Warning:
		return slog.LevelWarn
	case Error:
		return slog.LevelError
	case Critical:
		return slog.LevelError + 4
	}
	return math.MaxInt32
}

// Names are the loggers every registry has: Envoy's names for the parts
// mesh-proxy has (and a few it shares with Envoy's tooling, so scripts that
// set them do not fail).
var Names = []string{
	"admin", "client", "config", "connection", "conn_handler", "dns", "filter",
	"grpc", "health_checker", "http", "http2", "main", "misc", "pool", "rbac",
	"router", "runtime", "secret", "tracing", "upstream",
}

// Registry holds the level of every named logger.
type Registry struct {
	levels map[string]*atomic.Int32
	out    atomic.Pointer[slog.Handler]
}

// NewRegistry returns a registry with every logger of Names at level.
func NewRegistry(level Level) *Registry {
	r := &Registry{levels: map[string]*atomic.Int32{}}
	for _, n := range Names {
		v := new(atomic.Int32)
		v.Store(int32(level))
		r.levels[n] = v
	}
	return r
}

// Default is the process's registry; the proxy's packages log through it.
var Default = NewRegistry(Info)

// SetOutput sends every logger's records to h, which should let every level
// through: the loggers filter. Until it is called, or after SetOutput(nil),
// records go to slog's default handler.
func (r *Registry) SetOutput(h slog.Handler) { r.out.Store(&h) }

// SetAll sets every logger to level.
func (r *Registry) SetAll(level Level) {
	for _, v := range r.levels {
		v.Store(int32(level))
	}
}

// Set sets one logger; an unknown name is an error listing the known ones.
func (r *Registry) Set(name string, level Level) error {
	v, ok := r.levels[name]
	if !ok {
		return fmt.Errorf("unknown logger %q: want one of %s", name, strings.Join(r.names(), ", "))
	}
	v.Store(int32(level))
	return nil
}

// Levels returns every logger's level.
func (r *Registry) Levels() map[string]Level {
	out := make(map[string]Level, len(r.levels))
	for n, v := range r.levels {
		out[n] = Level(v.Load())
	}
	return out
}

func (r *Registry) names() []string {
	out := make([]string, 0, len(r.levels))
	for n := range r.levels {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Logger returns the logger called name; it panics on a name outside Names,
// as that is a programming error.
func (r *Registry) Logger(name string) *slog.Logger {
	v, ok := r.levels[name]
	if !ok {
		panic("logging: unknown logger " + name)
	}
	return slog.New(&handler{r: r, name: name, level: v})
}

// handler filters by its logger's current level and tags records with the logger's name.
type handler struct {
	r     *Registry
	name  string
	level *atomic.Int32
	// with replays WithAttrs and WithGroup calls, in order, on the output handler.
	with []func(slog.Handler) slog.Handler
}

func (h *handler) inner() slog.Handler {
	if p := h.r.out.Load(); p != nil && *p != nil {
		return *p
	}
	return slog.Default().Handler()
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= Level(h.level.Load()).slogLevel()
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := h.inner()
	if !out.Enabled(ctx, rec.Level) {
		return nil
	}
	out = out.WithAttrs([]slog.Attr{slog.String("logger", h.name)})
	for _, w := range h.with {
		out = w(out)
	}
	return out.Handle(ctx, rec)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.and(func(o slog.Handler) slog.Handler { return o.WithAttrs(as) })
}

func (h *handler) WithGroup(name string) slog.Handler {
	return h.and(func(o slog.Handler) slog.Handler { return o.WithGroup(name) })
}

func (h *handler) and(w func(slog.Handler) slog.Handler) slog.Handler {
	c := *h
	c.with = append(slices.Clone(h.with), w)
	return &c
}

// ReplaceLevelNames is a slog.HandlerOptions.ReplaceAttr that prints the
// levels slog has no name for as Envoy's: TRACE below DEBUG, CRITICAL above ERROR.
func ReplaceLevelNames(groups []string, a slog.Attr) slog.Attr {
	if a.Key != slog.LevelKey || len(groups) > 0 {
		return a
	}
	if l, ok := a.Value.Any().(slog.Level); ok {
		switch {
		case l < slog.LevelDebug:
			a.Value = slog.StringValue("TRACE")
		case l > slog.LevelError:
			a.Value = slog.StringValue("CRITICAL")
		}
	}
	return a
}
