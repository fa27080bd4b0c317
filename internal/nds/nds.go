// Package nds is Istio's name discovery service resource: the NameTable pilot
// sends a proxy over its ADS stream (type
// type.googleapis.com/istio.networking.nds.v1.NameTable) and the proxy's DNS
// server answers from. istio.io/api does not ship the message, so its
// descriptor is built here, field for field as Istio's agent and istiod
// encode it, and registered so an Any of it decodes anywhere (the proxy's
// store, config dumps).
package nds

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
)

// TypeURL is the xDS type of a NameTable.
const TypeURL = "type.googleapis.com/istio.networking.nds.v1.NameTable"

// Registry values of NameInfo.registry, as istiod writes them.
const (
	RegistryKubernetes = "Kubernetes"
	RegistryExternal   = "External"
)

// Info is one host of the table.
type Info struct {
	IPs       []string // the host's addresses
	Registry  string   // Kubernetes for a Service, External for a ServiceEntry host
	Shortname string   // the Service's name (Kubernetes only)
	Namespace string   // the Service's namespace (Kubernetes only)
	AltHosts  []string // other names that answer with these addresses
}

// Table is a NameTable: hosts (FQDNs without the trailing dot) to what
// they resolve to.
type Table map[string]Info

var (
	tableDesc, infoDesc protoreflect.MessageDescriptor
	tableType           protoreflect.MessageType
)

func init() {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	msg := descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	field := func(name, json string, n int32, label *descriptorpb.FieldDescriptorProto_Label, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), JsonName: proto.String(json), Number: proto.Int32(n), Label: label, Type: typ}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	fd := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("mesh/nds/nds.proto"),
		Package: proto.String("istio.networking.nds.v1"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("NameTable"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("table", "table", 1, rep, msg, ".istio.networking.nds.v1.NameTable.TableEntry"),
			},
			NestedType: []*descriptorpb.DescriptorProto{
				{
					Name: proto.String("NameInfo"),
					Field: []*descriptorpb.FieldDescriptorProto{
						field("ips", "ips", 1, rep, str, ""),
						field("registry", "registry", 2, opt, str, ""),
						field("shortname", "shortname", 3, opt, str, ""),
						field("namespace", "namespace", 4, opt, str, ""),
						field("alt_hosts", "altHosts", 5, rep, str, ""),
					},
				},
				{
					Name:    proto.String("TableEntry"),
					Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
					Field: []*descriptorpb.FieldDescriptorProto{
						field("key", "key", 1, opt, str, ""),
						field("value", "value", 2, opt, msg, ".istio.networking.nds.v1.NameTable.NameInfo"),
					},
				},
			},
		}},
	}
	f, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
	if err != nil {
		panic(fmt.Sprintf("nds: descriptor: %v", err)) // fixed at build time
	}
	tableDesc = f.Messages().ByName("NameTable")
	infoDesc = tableDesc.Messages().ByName("NameInfo")
	tableType = dynamicpb.NewMessageType(tableDesc)
	if _, err := protoregistry.GlobalFiles.FindFileByPath(f.Path()); err != nil {
		if err := protoregistry.GlobalFiles.RegisterFile(f); err != nil {
			panic(fmt.Sprintf("nds: register descriptor: %v", err))
		}
	}
	if _, err := protoregistry.GlobalTypes.FindMessageByName(tableDesc.FullName()); err != nil {
		if err := protoregistry.GlobalTypes.RegisterMessage(tableType); err != nil {
			panic(fmt.Sprintf("nds: register type: %v", err))
		}
	}
}

// Message returns t as a NameTable proto message.
func (t Table) Message() proto.Message {
	m := dynamicpb.NewMessage(tableDesc)
	tf := tableDesc.Fields().ByName("table")
	mp := m.Mutable(tf).Map()
	hosts := make([]string, 0, len(t))
	for h := range t {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	fs := infoDesc.Fields()
	for _, h := range hosts {
		in := t[h]
		im := dynamicpb.NewMessage(infoDesc)
		setList(im, fs.ByName("ips"), in.IPs)
		setList(im, fs.ByName("alt_hosts"), in.AltHosts)
		for name, v := range map[protoreflect.Name]string{"registry": in.Registry, "shortname": in.Shortname, "namespace": in.Namespace} {
			if v != "" {
				im.Set(fs.ByName(name), protoreflect.ValueOfString(v))
			}
		}
		mp.Set(protoreflect.ValueOfString(h).MapKey(), protoreflect.ValueOfMessage(im))
	}
	return m
}

func setList(m *dynamicpb.Message, fd protoreflect.FieldDescriptor, vs []string) {
	if len(vs) == 0 {
		return
	}
	l := m.Mutable(fd).List()
	for _, v := range vs {
		l.Append(protoreflect.ValueOfString(v))
	}
}

// FromMessage reads a NameTable message (as decoded from an Any).
func FromMessage(m proto.Message) (Table, error) {
	r := m.ProtoReflect()
	if r.Descriptor().FullName() != tableDesc.FullName() {
		return nil, fmt.Errorf("want a %s, got a %s", tableDesc.FullName(), r.Descriptor().FullName())
	}
	out := Table{}
	tf := r.Descriptor().Fields().ByName("table")
	r.Get(tf).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		im := v.Message()
		fs := im.Descriptor().Fields()
		out[k.String()] = Info{
			IPs:       getList(im, fs.ByName("ips")),
			Registry:  im.Get(fs.ByName("registry")).String(),
			Shortname: im.Get(fs.ByName("shortname")).String(),
			Namespace: im.Get(fs.ByName("namespace")).String(),
			AltHosts:  getList(im, fs.ByName("alt_hosts")),
		}
		return true
	})
	return out, nil
}

func getList(m protoreflect.Message, fd protoreflect.FieldDescriptor) []string {
	l := m.Get(fd).List()
	if l.Len() == 0 {
		return nil
	}
	out := make([]string, 0, l.Len())
	for i := 0; i < l.Len(); i++ {
		out = append(out, l.Get(i).String())
	}
	return out
}

// FromAny decodes a NameTable from an xDS resource.
func FromAny(a *anypb.Any) (Table, error) {
	if a.GetTypeUrl() != TypeURL {
		return nil, fmt.Errorf("resource of type %s, want %s", a.GetTypeUrl(), TypeURL)
	}
	m := dynamicpb.NewMessage(tableDesc)
	if err := proto.Unmarshal(a.GetValue(), m); err != nil {
		return nil, fmt.Errorf("NameTable: %w", err)
	}
	return FromMessage(m)
}
