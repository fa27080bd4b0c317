package configdump

import (
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// placeholderType stands in for Any payloads of types this program does not
// link. It has no fields, so with DiscardUnknown protojson skips the
// payload's contents instead of failing the whole resource; the contents
// stay available in Resource.Raw.
var placeholderType = func() protoreflect.MessageType {
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:        proto.String("mesh/configdump/placeholder.proto"),
		Package:     proto.String("mesh.configdump"),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("UnknownAny")}},
	}, nil)
	if err != nil {
		panic(err)
	}
	return dynamicpb.NewMessageType(fd.Messages().Get(0))
}()

// resolver resolves Any types from the global registry and records the ones
// it had to replace with placeholderType. One resolver serves one resource.
type resolver struct {
	unknown map[string]bool
}

func (r *resolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	if err == nil {
		return mt, nil
	}
	if r.unknown == nil {
		r.unknown = map[string]bool{}
	}
	r.unknown[url] = true
	return placeholderType, nil
}

func (r *resolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	return protoregistry.GlobalTypes.FindMessageByName(name)
}

func (r *resolver) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(name)
}

func (r *resolver) FindExtensionByNumber(m protoreflect.FullName, n protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(m, n)
}

func (r *resolver) unknownList() []string {
	if len(r.unknown) == 0 {
		return nil
	}
	out := make([]string, 0, len(r.unknown))
	for u := range r.unknown {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}
