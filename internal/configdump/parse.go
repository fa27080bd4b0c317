package configdump

import (
	"errors"
	"fmt"
	"strings"
)

const adminPrefix = "type.googleapis.com/envoy.admin.v3."

// BootstrapTypeURL is the type URL recorded for the bootstrap resource.
const BootstrapTypeURL = "type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap"

// section describes one array of resources inside a typed config dump.
type section struct {
	array string  // the array's field, e.g. static_clusters
	state State   // the state its resources are in
	field string  // the resource's field inside each entry, e.g. cluster
	list  bool    // field holds a list of resources rather than one
	inner []inner // for entries that wrap per-state sub-objects (dynamic_listeners)
}

type inner struct {
	field string
	state State
}

type configType struct {
	kind     Kind
	sections []section
}

var listenerStates = []inner{{"active_state", StateActive}, {"warming_state", StateWarming}, {"draining_state", StateDraining}}

// configTypes maps the admin dump types to where their resources live.
var configTypes = map[string]configType{
	"ClustersConfigDump": {KindCluster, []section{
		{array: "static_clusters", state: StateStatic, field: "cluster"},
		{array: "dynamic_active_clusters", state: StateActive, field: "cluster"},
		{array: "dynamic_warming_clusters", state: StateWarming, field: "cluster"},
	}},
	"ListenersConfigDump": {KindListener, []section{
		{array: "static_listeners", state: StateStatic, field: "listener"},
		{array: "dynamic_listeners", field: "listener", inner: listenerStates},
	}},
	"RoutesConfigDump": {KindRoute, []section{
		{array: "static_route_configs", state: StateStatic, field: "route_config"},
		{array: "dynamic_route_configs", state: StateActive, field: "route_config"},
	}},
	"ScopedRoutesConfigDump": {KindScopedRoute, []section{
		{array: "inline_scoped_route_configs", state: StateStatic, field: "scoped_route_configs", list: true},
		{array: "dynamic_scoped_route_configs", state: StateActive, field: "scoped_route_configs", list: true},
	}},
	"EndpointsConfigDump": {KindEndpoint, []section{
		{array: "static_endpoint_configs", state: StateStatic, field: "endpoint_config"},
		{array: "dynamic_endpoint_configs", state: StateActive, field: "endpoint_config"},
	}},
	"SecretsConfigDump": {KindSecret, []section{
		{array: "static_secrets", state: StateStatic, field: "secret"},
		{array: "dynamic_active_secrets", state: StateActive, field: "secret"},
		{array: "dynamic_warming_secrets", state: StateWarming, field: "secret"},
	}},
	"EcdsConfigDump": {KindExtensionConfig, []section{
		{array: "ecds_filters", state: StateActive, field: "ecds_filter"},
	}},
}

// sameKey compares JSON field names the way protojson does: Envoy writes
// snake_case, other tools write lowerCamelCase, and both are accepted.
func sameKey(got, want string) bool {
	if got == want {
		return true
	}
	i := 0
	for j := 0; j < len(got); j++ {
		c := got[j]
		if c >= 'A' && c <= 'Z' {
			if i >= len(want) || want[i] != '_' {
				return false
			}
			i++
			c += 'a' - 'A'
		}
		if i >= len(want) || want[i] != c {
			return false
		}
		i++
	}
	return i == len(want)
}

// parser holds the state of one Parse call.
type parser struct {
	data []byte
	opts Options
	out  []*Resource
	clus []byte // a /clusters?format=json document, when that is what was given
}

// Parse reads a config dump. It accepts Envoy's /config_dump output (the
// {"configs": [...]} document), a single config section such as a bare
// BootstrapConfigDump, or /clusters?format=json. Malformed input yields a
// *ParseError naming the line, column and position in the dump.
func Parse(data []byte, opts Options) (*Dump, error) {
	p := &parser{data: data, opts: opts}
	s := &scanner{data: data}
	switch s.peek() {
	case 0:
		return nil, ErrEmpty
	case '{':
	default:
		return nil, newParseError(data, s.pos, "", fmt.Errorf("expected a JSON object from Envoy's /config_dump, found %q", data[s.pos]))
	}
	if err := p.top(s); err != nil {
		return nil, err
	}
	if s.peek() != 0 {
		return nil, newParseError(data, s.pos, "", errors.New("unexpected data after the end of the dump"))
	}
	d := &Dump{Resources: p.out}
	if p.clus != nil {
		hs, err := parseHostStatuses(p.clus)
		if err != nil {
			return nil, err
		}
		d.HostStatuses = hs
	}
	if err := decodeAll(data, d.Resources, opts); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate checks that data is well-formed JSON throughout, with the same
// positioned errors as Parse, without decoding anything. Parse itself only
// checks the structure of sections it was not asked to decode.
func Validate(data []byte) error {
	s := &scanner{data: data}
	if s.peek() == 0 {
		return ErrEmpty
	}
	if err := s.skipValue(0); err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return newParseError(data, se.Offset, "", err)
		}
		return err
	}
	if s.peek() != 0 {
		return newParseError(data, s.pos, "", errors.New("unexpected data after the end of the dump"))
	}
	return nil
}

// top walks the document's outermost object and decides what it is.
func (p *parser) top(s *scanner) error {
	start := s.pos
	// Only the first key is looked at here: walking a 50 MB document twice
	// to look for a key that is almost never there would double the cost.
	typeURL, err := peekType(p.data, start, true)
	if err != nil {
		return p.syntax(err, "")
	}
	if typeURL != "" {
		// A single config section on its own.
		return p.config(s, typeURL, "")
	}
	sawConfigs, sawType := false, false
	sawOther := ""
	err = s.object(func(key string, _ int) error {
		switch {
		case sameKey(key, "configs"):
			sawConfigs = true
			return s.array(func(i int) error {
				path := fmt.Sprintf("configs[%d]", i)
				s.ws()
				typeURL, err := peekType(p.data, s.pos, false)
				if err != nil {
					return p.syntax(err, path)
				}
				if s.peek() != '{' {
					return p.syntax(s.fail("expected an object with an \"@type\" field"), path)
				}
				if typeURL == "" {
					return p.syntax(s.fail("config has no \"@type\" field"), path)
				}
				return p.config(s, typeURL, path)
			})
		case sameKey(key, "bootstrap"):
			// A BootstrapConfigDump printed without its Any wrapper.
			sawOther = key
			return p.bootstrap(s, "bootstrap", "", "")
		case sameKey(key, "cluster_statuses"):
			sawOther = key
			return s.skip()
		case key == "@type":
			sawType = true
			return s.skip()
		default:
			return s.skip()
		}
	})
	if err != nil {
		return p.syntax(err, "")
	}
	if sawType && !sawConfigs {
		typeURL, err := peekType(p.data, start, false)
		if err != nil {
			return p.syntax(err, "")
		}
		p.out = p.out[:0]
		s.pos = start
		return p.config(s, typeURL, "")
	}
	if sameKey(sawOther, "cluster_statuses") {
		p.clus = p.data[start:s.pos]
	}
	if !sawConfigs && sawOther == "" {
		return newParseError(p.data, start, "", errors.New(`not an Envoy config dump: expected a top-level "configs" array (the output of the admin API's /config_dump)`))
	}
	return nil
}

// syntax turns a scanner error into a ParseError with a path, leaving ParseErrors alone.
func (p *parser) syntax(err error, path string) error {
	if err == nil {
		return nil
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		return err
	}
	var se *syntaxError
	if errors.As(err, &se) {
		return newParseError(p.data, se.Offset, path, err)
	}
	return newParseError(p.data, 0, path, err)
}

// config walks one element of configs.
func (p *parser) config(s *scanner, typeURL, path string) error {
	short, isAdmin := strings.CutPrefix(typeURL, adminPrefix)
	label := path
	if label != "" {
		label += " "
	}
	label += "(" + strings.TrimPrefix(typeURL, "type.googleapis.com/") + ")"
	if isAdmin && short == "BootstrapConfigDump" {
		if !p.opts.wants(KindBootstrap) {
			return p.syntax(s.skip(), label)
		}
		return p.syntax(s.object(func(key string, _ int) error {
			if sameKey(key, "bootstrap") {
				return p.bootstrap(s, label+".bootstrap", "", "")
			}
			return s.skip()
		}), label)
	}
	ct, known := configTypes[short]
	if !isAdmin || !known {
		s.ws()
		start := s.pos
		raw, err := s.value()
		if err != nil {
			return p.syntax(err, label)
		}
		if p.opts.wants(KindUnknown) {
			p.out = append(p.out, &Resource{Kind: KindUnknown, Name: typeURL, TypeURL: typeURL, Raw: raw, Path: label, Offset: start, UnknownTypes: []string{typeURL}})
		}
		return nil
	}
	if !p.opts.wants(ct.kind) {
		return p.syntax(s.skip(), label)
	}
	version := ""
	err := s.object(func(key string, _ int) error {
		if sameKey(key, "version_info") {
			return p.str(s, &version)
		}
		for _, sec := range ct.sections {
			if sameKey(key, sec.array) {
				return s.array(func(i int) error {
					return p.entry(s, ct.kind, sec, fmt.Sprintf("%s.%s[%d]", label, sec.array, i), version)
				})
			}
		}
		return s.skip()
	})
	return p.syntax(err, label)
}

// str reads a string value, or skips a value of another type.
func (p *parser) str(s *scanner, into *string) error {
	if s.peek() != '"' {
		return s.skip()
	}
	raw, err := s.skipString()
	if err != nil {
		return err
	}
	*into = unquote(raw)
	return nil
}

// entryMeta is what a dump entry says about the resource it wraps.
type entryMeta struct {
	name, version, lastUpdated string
}

// entry walks one element of a section's array.
func (p *parser) entry(s *scanner, kind Kind, sec section, path, version string) error {
	meta := entryMeta{version: version}
	first := len(p.out)
	err := s.object(func(key string, _ int) error {
		switch {
		case sameKey(key, "name"):
			return p.str(s, &meta.name)
		case sameKey(key, "version_info"):
			return p.str(s, &meta.version)
		case sameKey(key, "last_updated"):
			return p.str(s, &meta.lastUpdated)
		case sameKey(key, sec.field) && sec.inner == nil:
			if sec.list {
				return s.array(func(i int) error {
					return p.resource(s, kind, sec.state, fmt.Sprintf("%s.%s[%d]", path, sec.field, i))
				})
			}
			return p.resource(s, kind, sec.state, path+"."+sec.field)
		}
		for _, in := range sec.inner {
			if sameKey(key, in.field) {
				sub := entryMeta{version: meta.version}
				return s.object(func(key string, _ int) error {
					switch {
					case sameKey(key, "version_info"):
						return p.str(s, &sub.version)
					case sameKey(key, "last_updated"):
						return p.str(s, &sub.lastUpdated)
					case sameKey(key, sec.field):
						if err := p.resource(s, kind, in.state, path+"."+in.field+"."+sec.field); err != nil {
							return err
						}
						r := p.out[len(p.out)-1]
						r.VersionInfo, r.LastUpdated = sub.version, sub.lastUpdated
						return nil
					}
					return s.skip()
				})
			}
		}
		return s.skip()
	})
	if err != nil {
		return err
	}
	for _, r := range p.out[first:] {
		if r.Name == "" {
			r.Name = meta.name
		}
		if r.VersionInfo == "" {
			r.VersionInfo = meta.version
		}
		if r.LastUpdated == "" {
			r.LastUpdated = meta.lastUpdated
		}
	}
	return nil
}

// resource records the Any at pos.
func (p *parser) resource(s *scanner, kind Kind, state State, path string) error {
	s.ws()
	start := s.pos
	if s.peek() != '{' {
		if s.peek() == 0 {
			return s.eof()
		}
		return newParseError(p.data, start, path, fmt.Errorf("expected the resource as a JSON object, found %q", s.data[s.pos]))
	}
	raw, err := s.value()
	if err != nil {
		return err
	}
	p.out = append(p.out, &Resource{Kind: kind, State: state, Raw: raw, Path: path, Offset: start})
	return nil
}

// bootstrap records the bootstrap object at pos.
func (p *parser) bootstrap(s *scanner, path, version, lastUpdated string) error {
	if err := p.resource(s, KindBootstrap, StateStatic, path); err != nil {
		return err
	}
	r := p.out[len(p.out)-1]
	r.TypeURL = BootstrapTypeURL
	r.VersionInfo, r.LastUpdated = version, lastUpdated
	return nil
}

// errFound stops a walk early once the wanted key was read.
var errFound = errors.New("found")

// peekType returns the "@type" of the object at off, or "" when it has none
// or is not an object. With firstOnly it looks at the first key alone.
func peekType(data []byte, off int, firstOnly bool) (string, error) {
	s := &scanner{data: data, pos: off}
	if s.peek() != '{' {
		return "", nil
	}
	var typeURL string
	err := s.object(func(key string, _ int) error {
		if key == "@type" {
			if s.peek() != '"' {
				return s.fail(`"@type" must be a string`)
			}
			raw, err := s.skipString()
			if err != nil {
				return err
			}
			typeURL = unquote(raw)
			return errFound
		}
		if firstOnly {
			return errFound
		}
		return s.skip()
	})
	if err != nil && err != errFound {
		return "", err
	}
	return typeURL, nil
}

func unquote(raw []byte) string {
	if len(raw) < 2 {
		return ""
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var out string
			if err := jsonUnmarshal(raw, &out); err == nil {
				return out
			}
			break
		}
	}
	return string(inner)
}
