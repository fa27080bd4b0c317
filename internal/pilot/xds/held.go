package xds

import "maps"

// What a delta stream's client holds of one type, kept by pilot rather than
// in the map go-control-plane keeps per stream. That map names every
// resource the client was sent with its version: thousands of entries per
// stream and type, the same content for every proxy of a group, and most of
// pilot's heap with a few thousand proxies connected. Nearly always a
// client holds exactly the generation it was last sent, which needs no map
// at all; pilot keeps one only for a stream that differs from its
// generation (a partial subscription, an unsubscribe, a reconnect with
// initial versions).
//
// The server is handed an empty map of the stream's own (the marker) as the
// next version map. It stays empty but for the server's own edits of it on
// a request: an unsubscribed name of a wildcard stream is set to "" (the
// client must be told again whether it exists). Seeing the marker come back
// tells pilot the server has taken no other map since (a new subscription,
// initial versions), and the request itself says what the client dropped.

// sentState is what one stream holds of one type.
type sentState struct {
	gen    *typeGen          // the generation last sent; nil before the first response
	full   bool              // the client holds every resource of gen at gen's version
	has    map[string]string // otherwise, what it holds: name to version ("" to be resent)
	marker map[string]string // the map handed to the server as the next version map
}

// absorb brings s up to date with a request before it is answered: known is
// the server's map for the stream, unsubscribed the request's names.
func (s *sentState) absorb(known map[string]string, unsubscribed []string) {
	if s.marker == nil || !sameMap(known, s.marker) {
		// The server holds a map pilot did not give it: the stream's first
		// request, with the versions the client says it has.
		*s = sentState{has: maps.Clone(known)}
		if s.has == nil {
			s.has = map[string]string{}
		}
		return
	}
	for _, n := range unsubscribed {
		if n == "*" {
			continue
		}
		s.materialize()
		if v, ok := known[n]; ok {
			s.has[n] = v
		} else {
			delete(s.has, n)
		}
	}
	clear(known)
}

// materialize turns a full state into the map of what it holds.
func (s *sentState) materialize() {
	if !s.full {
		return
	}
	s.has = make(map[string]string, s.gen.size)
	s.gen.each(func(it *item) bool { s.has[it.name] = it.version; return true })
	s.full = false
}

// held returns the version of name the client holds.
func (s *sentState) held(name string) (string, bool) {
	if s.full {
		if it := s.gen.lookup(name); it != nil {
			return it.version, true
		}
		return "", false
	}
	v, ok := s.has[name]
	return v, ok
}

// eachHeld calls fn with every name the client holds.
func (s *sentState) eachHeld(fn func(name string)) {
	if s.full {
		s.gen.each(func(it *item) bool { fn(it.name); return true })
		return
	}
	for n := range s.has {
		fn(n)
	}
}

// heldCount is how many resources the client holds.
func (s *sentState) heldCount() int {
	if s.full {
		return s.gen.size
	}
	return len(s.has)
}
