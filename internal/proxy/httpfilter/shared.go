package httpfilter

import (
	"runtime"
	"sync"
	"weak"
)

// Shared keeps what filters build once per proxy rather than once per
// config, so that a config update, which compiles every HCM's chain anew,
// does not start it over: the JWKS a jwt_authn provider fetched (a new
// chain would otherwise refuse tokens until its own first fetch). Values
// are held weakly: one that no compiled filter refers to any more is
// dropped, and whatever it runs in the background stops with it.
type Shared struct {
	mu sync.Mutex
	m  map[string]any // key → weak.Pointer[T]
}

// Keep returns the value kept under key, made by mk (under a lock: mk must
// not block) when there is none or it was dropped. Keys name their filter
// (jwt_authn|...), so two filters never share one. A nil Shared keeps
// nothing: every call makes a new value.
func Keep[T any](s *Shared, key string, mk func() *T) *T {
	if s == nil {
		return mk()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if wp, ok := s.m[key].(weak.Pointer[T]); ok {
		if v := wp.Value(); v != nil {
			return v
		}
	}
	v := mk()
	wp := weak.Make(v)
	if s.m == nil {
		s.m = map[string]any{}
	}
	s.m[key] = wp
	runtime.AddCleanup(v, func(key string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur, ok := s.m[key].(weak.Pointer[T]); ok && cur == wp {
			delete(s.m, key)
		}
	}, key)
	return v
}
