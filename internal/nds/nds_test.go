package nds

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestTableRoundTripsThroughAny(t *testing.T) {
	in := Table{
		"reviews.default.svc.cluster.local": {IPs: []string{"198.19.0.10"}, Registry: RegistryKubernetes, Shortname: "reviews", Namespace: "default"},
		"db.internal":                       {IPs: []string{"240.240.0.7", "2001:2::7"}, Registry: RegistryExternal, AltHosts: []string{"db.alias"}},
	}
	a, err := anypb.New(in.Message())
	if err != nil {
		t.Fatal(err)
	}
	if a.TypeUrl != TypeURL {
		t.Fatalf("type URL %s, want %s", a.TypeUrl, TypeURL)
	}
	out, err := FromAny(a)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
	// The registered type decodes an Any generically (the proxy's store does).
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("UnmarshalNew: %v", err)
	}
	if _, err := FromMessage(m); err != nil {
		t.Fatal(err)
	}
	js, err := protojson.Marshal(m)
	if err != nil || len(js) == 0 {
		t.Fatalf("protojson: %v", err)
	}
}

// TestWireIsIstios checks the field numbers on the wire: table = 1 (a map
// entry of key 1, value 2), NameInfo ips = 1, registry = 2, shortname = 3,
// namespace = 4, alt_hosts = 5, as Istio's agent decodes them.
func TestWireIsIstios(t *testing.T) {
	b, err := proto.Marshal(Table{"a.b": {IPs: []string{"1.2.3.4"}, Registry: "R", Shortname: "S", Namespace: "N", AltHosts: []string{"x"}}}.Message())
	if err != nil {
		t.Fatal(err)
	}
	num, typ, n := protowire.ConsumeTag(b)
	if num != 1 || typ != protowire.BytesType {
		t.Fatalf("table field %d/%d", num, typ)
	}
	entry, _ := protowire.ConsumeBytes(b[n:])
	fields := map[protowire.Number][]byte{}
	for len(entry) > 0 {
		num, _, n := protowire.ConsumeTag(entry)
		v, m := protowire.ConsumeBytes(entry[n:])
		fields[num] = v
		entry = entry[n+m:]
	}
	if string(fields[1]) != "a.b" {
		t.Fatalf("map key %q", fields[1])
	}
	info := map[protowire.Number]string{}
	rest := fields[2]
	for len(rest) > 0 {
		num, _, n := protowire.ConsumeTag(rest)
		v, m := protowire.ConsumeBytes(rest[n:])
		info[num] = string(v)
		rest = rest[n+m:]
	}
	want := map[protowire.Number]string{1: "1.2.3.4", 2: "R", 3: "S", 4: "N", 5: "x"}
	if !reflect.DeepEqual(info, want) {
		t.Fatalf("NameInfo fields %v, want %v", info, want)
	}
}
