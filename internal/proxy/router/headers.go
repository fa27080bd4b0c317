package router

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// HeaderOps adds and removes headers; compiled once, applied per request.
type HeaderOps struct {
	add    []headerAdd
	remove []string
}

type headerAdd struct {
	name   string
	value  []valuePart
	action corev3.HeaderValueOption_HeaderAppendAction
}

// valuePart is literal text or one formatter variable.
type valuePart struct {
	lit string
	v   string // variable name, "" for literal
	arg string
}

// Vars supplies the request facts header formatters may name.
type Vars struct {
	Remote, Local, Protocol string
	Req                     http.Header
}

var hostname, _ = os.Hostname()

func compileHeaderOps(add []*corev3.HeaderValueOption, remove []string, field string) (HeaderOps, error) {
	var ops HeaderOps
	for i, h := range add {
		f := fmt.Sprintf("%s_to_add[%d]", field, i)
		hv := h.GetHeader()
		if hv.GetKey() == "" {
			return ops, fmt.Errorf("%s.header.key: required", f)
		}
		parts, err := compileFormat(hv.GetValue(), f+".header.value")
		if err != nil {
			return ops, err
		}
		action := h.GetAppendAction()
		if a := h.GetAppend(); a != nil { //nolint:staticcheck // legacy field still sent
			if a.GetValue() {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			} else {
				action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			}
		}
		ops.add = append(ops.add, headerAdd{name: http.CanonicalHeaderKey(hv.GetKey()), value: parts, action: action})
	}
	for _, r := range remove {
		ops.remove = append(ops.remove, http.CanonicalHeaderKey(r))
	}
	return ops, nil
}

var knownVars = map[string]bool{
	"DOWNSTREAM_REMOTE_ADDRESS": true, "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": true,
	"DOWNSTREAM_LOCAL_ADDRESS": true, "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": true,
	"HOSTNAME": true, "PROTOCOL": true, "REQ": true,
}

func compileFormat(s, field string) ([]valuePart, error) {
	if !strings.Contains(s, "%") {
		return []valuePart{{lit: s}}, nil
	}
	var parts []valuePart
	for s != "" {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			parts = append(parts, valuePart{lit: s})
			break
		}
		if i > 0 {
			parts = append(parts, valuePart{lit: s[:i]})
		}
		s = s[i+1:]
		if strings.HasPrefix(s, "%") {
			parts = append(parts, valuePart{lit: "%"})
			s = s[1:]
			continue
		}
		j := strings.IndexByte(s, '%')
		if j < 0 {
			return nil, fmt.Errorf("%s: unterminated %%VARIABLE%% in %q", field, s)
		}
		name, arg := s[:j], ""
		if k := strings.IndexByte(name, '('); k >= 0 && strings.HasSuffix(name, ")") {
			name, arg = name[:k], name[k+1:len(name)-1]
		}
		if !knownVars[name] {
			return nil, fmt.Errorf("%s: formatter %%%s%% is not supported", field, name)
		}
		parts = append(parts, valuePart{v: name, arg: arg})
		s = s[j+1:]
	}
	return parts, nil
}

func render(parts []valuePart, v *Vars) string {
	if len(parts) == 1 && parts[0].v == "" {
		return parts[0].lit
	}
	var b strings.Builder
	for _, p := range parts {
		switch p.v {
		case "":
			b.WriteString(p.lit)
		case "DOWNSTREAM_REMOTE_ADDRESS":
			b.WriteString(v.Remote)
		case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
			b.WriteString(hostOnly(v.Remote))
		case "DOWNSTREAM_LOCAL_ADDRESS":
			b.WriteString(v.Local)
		case "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":
			b.WriteString(hostOnly(v.Local))
		case "HOSTNAME":
			b.WriteString(hostname)
		case "PROTOCOL":
			b.WriteString(v.Protocol)
		case "REQ":
			if v.Req != nil {
				b.WriteString(v.Req.Get(p.arg))
			}
		}
	}
	return b.String()
}

func hostOnly(a string) string {
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

// Empty reports whether the ops do nothing.
func (o *HeaderOps) Empty() bool { return len(o.add) == 0 && len(o.remove) == 0 }

// Apply edits h in place.
func (o *HeaderOps) Apply(h http.Header, v *Vars) {
	for _, r := range o.remove {
		h.Del(r)
	}
	for _, a := range o.add {
		val := render(a.value, v)
		_, exists := h[a.name]
		switch a.action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			h[a.name] = append(h[a.name], val)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !exists {
				h[a.name] = []string{val}
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h[a.name] = []string{val}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if exists {
				h[a.name] = []string{val}
			}
		}
	}
}

// CompileHeaderOps compiles header additions and removals for filters that
// edit headers as routes do (the same formatter variables); field names them in errors.
func CompileHeaderOps(add []*corev3.HeaderValueOption, remove []string, field string) (HeaderOps, error) {
	return compileHeaderOps(add, remove, field)
}
