// Package protofields refuses resources that set fields the proxy does not act on.
package protofields

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Check refuses a message that sets a field outside allowed: the proxy
// acts on every field a resource sets, or says which ones it cannot.
// field names the message in the error, e.g. `cluster "a"`.
func Check(m proto.Message, field string, allowed ...protoreflect.Name) error {
	var unknown []string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		for _, a := range allowed {
			if fd.Name() == a {
				return true
			}
		}
		unknown = append(unknown, string(fd.Name()))
		return true
	})
	switch len(unknown) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%s: field %s is not supported by mesh-proxy (remove it, or it would be ignored)", field, unknown[0])
	}
	sort.Strings(unknown)
	return fmt.Errorf("%s: fields %s are not supported by mesh-proxy (remove them, or they would be ignored)", field, strings.Join(unknown, ", "))
}
