package config

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	_ "mesh.dev/mesh/internal/proxy/config/types"
)

// Compiler turns one resource into its compiled form; prev is the resource it
// replaces (nil if new) so runtime state can be carried over. An error names
// the field the proxy cannot honour and makes the whole update a NACK.
type Compiler func(msg proto.Message, prev *Resource, next *Snapshot) (any, error)

// Store holds the current snapshot and applies updates to it.
type Store struct {
	mu        sync.Mutex // serialises writers; readers never take it
	cur       atomic.Pointer[Snapshot]
	compilers map[string]Compiler
	commits   []func(old, new *Snapshot)
	fallback  atomic.Pointer[func(string) *tlsv3.Secret]
}

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{compilers: map[string]Compiler{}}
	s.cur.Store(newSnapshot())
	return s
}

// SetCompiler registers the compiler for a type URL.
func (s *Store) SetCompiler(typeURL string, c Compiler) { s.compilers[typeURL] = c }

// OnCommit registers a hook run (under the writer lock) after each accepted update.
func (s *Store) OnCommit(f func(old, new *Snapshot)) { s.commits = append(s.commits, f) }

// Load returns the current snapshot; cheap and lock-free.
func (s *Store) Load() *Snapshot { return s.cur.Load() }

// Secret implements tls.Secrets against the current snapshot, so a rotated secret is seen at the next handshake.
// A secret the control plane has not sent comes from the fallback, if one is set.
func (s *Store) Secret(name string) *tlsv3.Secret {
	if sec := s.Load().Secret(name); sec != nil {
		return sec
	}
	if f := s.fallback.Load(); f != nil {
		return (*f)(name)
	}
	return nil
}

// SetSecretFallback supplies secrets SDS has not delivered: the agent's own
// workload certificate stands in for "default" and "ROOTCA" until (or
// unless) the control plane pushes them.
func (s *Store) SetSecretFallback(f func(name string) *tlsv3.Secret) { s.fallback.Store(&f) }

// Update is one set of changes to one resource type.
type Update struct {
	TypeURL string
	Version string
	// Replace: resources form the complete set of the type (SotW for LDS/CDS);
	// otherwise resources are merged and Removed names are deleted.
	Replace   bool
	Resources []*anypb.Any
	Names     []string // optional names for Resources (delta); taken from the message when empty
	Removed   []string
	Static    bool
	// Messages, when set, are the resources already decoded (the bootstrap's
	// static resources), kept as they are instead of a second decoded copy;
	// the store and compilers only read them.
	Messages []proto.Message
}

// Apply validates and compiles an update and, if everything is accepted, installs it.
func (s *Store) Apply(u Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()
	next := old.clone()
	m := map[string]*Resource{}
	if !u.Replace {
		for k, v := range old.res[u.TypeURL] {
			m[k] = v
		}
	} else {
		// Static resources survive a dynamic replace.
		for k, v := range old.res[u.TypeURL] {
			if v.Static {
				m[k] = v
			}
		}
	}
	for _, n := range u.Removed {
		if r := m[n]; r != nil && !r.Static {
			delete(m, n)
		}
	}
	next.res[u.TypeURL] = m
	now := time.Now()
	var errs []error
	n := len(u.Resources)
	if u.Messages != nil {
		n = len(u.Messages)
	}
	for i := 0; i < n; i++ {
		var msg proto.Message
		if u.Messages != nil {
			msg = u.Messages[i]
			if t := "type.googleapis.com/" + string(msg.ProtoReflect().Descriptor().FullName()); t != u.TypeURL {
				errs = append(errs, fmt.Errorf("resource %d: type %s in a %s update", i, t, u.TypeURL))
				continue
			}
		} else {
			a := u.Resources[i]
			if a.GetTypeUrl() != u.TypeURL {
				errs = append(errs, fmt.Errorf("resource %d: type %s in a %s response", i, a.GetTypeUrl(), u.TypeURL))
				continue
			}
			var err error
			if msg, err = a.UnmarshalNew(); err != nil {
				errs = append(errs, fmt.Errorf("resource %d: %w", i, err))
				continue
			}
		}
		name := ResourceName(msg)
		if i < len(u.Names) && u.Names[i] != "" {
			name = u.Names[i]
		}
		prev := old.res[u.TypeURL][name]
		if prev != nil && prev.Static && !u.Static {
			errs = append(errs, fmt.Errorf("%s %q: already defined statically in the bootstrap", shortType(u.TypeURL), name))
			continue
		}
		r := &Resource{Name: name, Version: u.Version, LastUpdated: now, Msg: msg, Static: u.Static}
		if prev != nil && proto.Equal(prev.Msg, msg) {
			r.LastUpdated = prev.LastUpdated
		}
		m[name] = r
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Compile after all are in place, so a resource may refer to a sibling of the same update.
	if c := s.compilers[u.TypeURL]; c != nil {
		for _, r := range m {
			if r.Compiled != nil && old.res[u.TypeURL][r.Name] == r {
				continue // unchanged object from the previous snapshot
			}
			compiled, err := c(r.Msg, old.res[u.TypeURL][r.Name], next)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.Compiled = compiled
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if !u.Static {
		next.versions[u.TypeURL] = u.Version
	}
	s.cur.Store(next)
	for _, f := range s.commits {
		f(old, next)
	}
	return nil
}

// SetBootstrap records the bootstrap for /config_dump.
func (s *Store) SetBootstrap(b *bootstrapv3.Bootstrap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.cur.Load().clone()
	next.Bootstrap, next.BootstrapTime = b, time.Now()
	s.cur.Store(next)
}

// ResourceName returns the name of an xDS resource message.
func ResourceName(m proto.Message) string {
	switch x := m.(type) {
	case interface{ GetClusterName() string }:
		return x.GetClusterName()
	case interface{ GetName() string }:
		return x.GetName()
	}
	return ""
}

func shortType(t string) string {
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] == '.' {
			return t[i+1:]
		}
	}
	return t
}
