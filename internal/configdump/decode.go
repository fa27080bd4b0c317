package configdump

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
)

// unmarshal tolerates fields newer than the linked Envoy API, as a proxy
// that is newer than this program will send them.
var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// decodeAll decodes the resources in parallel; on failure it reports the
// first failing resource in dump order so the message does not depend on
// scheduling.
func decodeAll(data []byte, rs []*Resource, opts Options) error {
	workers := min(runtime.GOMAXPROCS(0), len(rs))
	if workers <= 1 {
		for _, r := range rs {
			if err := decode(r, opts.Fields[r.Kind]); err != nil {
				return resourceError(data, r, err)
			}
		}
		return nil
	}
	errs := make([]error, len(rs))
	next := make(chan int, len(rs))
	for i := range rs {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = decode(rs[i], opts.Fields[rs[i].Kind])
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return resourceError(data, rs[i], err)
		}
	}
	return nil
}

// protoPos matches the position protojson puts in its messages, relative to
// the resource it was decoding.
// protobuf-go varies the space after "proto:" (ASCII or no-break) on purpose.
var protoPos = regexp.MustCompile(`^proto:[\s\x{00a0}]*(.*?)[\s\x{00a0}]*\(line (\d+):(\d+)\):[\s\x{00a0}]*`)

// lastKey finds the last object key before the error, which is the field
// protojson was reading.
var lastKey = regexp.MustCompile(`"([^"\\]+)"\s*:\s*[^:]*$`)

// resourceError places a decode failure at its absolute position in the
// dump and names the field, which protojson's own message does not.
func resourceError(data []byte, r *Resource, err error) error {
	var se *syntaxError
	if errors.As(err, &se) {
		// Raised while reading inside the resource, relative to it.
		return newParseError(data, r.Offset+se.Offset, r.Path, err)
	}
	var de *decodeError
	if !errors.As(err, &de) {
		return newParseError(data, r.Offset, r.Path, err)
	}
	msg := de.err.Error()
	m := protoPos.FindStringSubmatch(msg)
	if m == nil {
		return newParseError(data, r.Offset, r.Path, err)
	}
	line, _ := strconv.Atoi(m[2])
	col, _ := strconv.Atoi(m[3])
	rel := 0
	for l := 1; l < line && rel < len(de.raw); l++ {
		i := bytes.IndexByte(de.raw[rel:], '\n')
		if i < 0 {
			break
		}
		rel += i + 1
	}
	rel = min(rel+col-1, len(de.raw))
	path := r.Path
	if k := lastKey.FindSubmatch(de.raw[:rel]); k != nil {
		path += ", field " + strconv.Quote(string(k[1]))
	}
	off := r.Offset
	if len(de.raw) == len(r.Raw) {
		// A partial decode reads a trimmed copy whose positions are not the dump's.
		off += rel
	}
	return newParseError(data, off, path, fmt.Errorf("%s", strings.ReplaceAll(strings.TrimPrefix(m[1]+": ", ": ")+msg[len(m[0]):], "\u00a0", " ")))
}

// decodeError carries protojson's failure and the bytes it was reading.
type decodeError struct {
	raw []byte
	err error
}

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// decode fills r.Message (and r.Name, r.TypeURL) from r.Raw, only the
// given top-level fields when fields is not empty.
func decode(r *Resource, fields []string) error {
	if r.Kind == KindUnknown {
		return nil
	}
	var msg proto.Message
	if r.Kind == KindBootstrap {
		msg = &bootstrapv3.Bootstrap{}
	} else {
		typeURL, err := peekType(r.Raw, 0, false)
		if err != nil {
			return err
		}
		if typeURL == "" {
			return fmt.Errorf(`resource has no "@type" field`)
		}
		r.TypeURL = typeURL
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
		if err != nil {
			// The resource itself is of a type we do not know: keep it raw.
			r.UnknownTypes = []string{typeURL}
			if r.Name == "" {
				r.Name = rawName(r.Raw)
			}
			return nil
		}
		msg = mt.New().Interface()
	}
	src := r.Raw
	if len(fields) > 0 {
		trimmed, err := pick(r.Raw, fields)
		if err != nil {
			return err
		}
		src, r.Partial = trimmed, true
	}
	res := &resolver{}
	opts := unmarshal
	opts.Resolver = res
	if err := opts.Unmarshal(src, msg); err != nil {
		return &decodeError{raw: src, err: err}
	}
	r.UnknownTypes = res.unknownList()
	r.Message = msg
	if r.Name == "" {
		r.Name = messageName(msg)
	}
	return nil
}

// pick returns an object holding only the given members of raw (and its
// "@type"). A field may be a dotted path into nested objects, e.g.
// metadata.filter_metadata.istio, to keep one entry of a large map.
func pick(raw []byte, fields []string) ([]byte, error) {
	s := &scanner{data: raw}
	return pickObject(s, fields, make([]byte, 0, 256))
}

func pickObject(s *scanner, fields []string, out []byte) ([]byte, error) {
	out = append(out, '{')
	n := 0
	err := s.object(func(key string, _ int) error {
		var sub []string
		whole := key == "@type"
		for _, f := range fields {
			head, rest, nested := strings.Cut(f, ".")
			if !sameKey(key, head) && key != head {
				continue
			}
			if !nested {
				whole = true
			} else {
				sub = append(sub, rest)
			}
		}
		if !whole && sub == nil {
			return s.skip()
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = strconv.AppendQuote(out, key)
		out = append(out, ':')
		if whole || s.peek() != '{' {
			v, err := s.value()
			out = append(out, v...)
			return err
		}
		var err error
		out, err = pickObject(s, sub, out)
		return err
	})
	if err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// messageName returns a resource's own name: its name field, or cluster_name for endpoints.
func messageName(m proto.Message) string {
	if b, ok := m.(*bootstrapv3.Bootstrap); ok {
		return b.GetNode().GetId()
	}
	md := m.ProtoReflect()
	for _, f := range []protoreflect.Name{"name", "cluster_name"} {
		if fd := md.Descriptor().Fields().ByName(f); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			return md.Get(fd).String()
		}
	}
	return ""
}

// rawName reads a top-level name or cluster_name from JSON that could not be typed.
func rawName(raw []byte) string {
	var v map[string]any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	for _, k := range []string{"name", "cluster_name", "clusterName"} {
		if s, ok := v[k].(string); ok {
			return s
		}
	}
	return ""
}

// parseHostStatuses decodes /clusters?format=json.
func parseHostStatuses(raw []byte) (*adminv3.Clusters, error) {
	var c adminv3.Clusters
	if err := unmarshal.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode /clusters output: %w", err)
	}
	return &c, nil
}
