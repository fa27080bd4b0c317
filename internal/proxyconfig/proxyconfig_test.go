package proxyconfig

import (
	"bytes"
	"strings"
	"testing"

	"mesh.dev/mesh/internal/configdump"
	"mesh.dev/mesh/internal/configdump/dumpgen"
)

func generated(t *testing.T) *configdump.Dump {
	t.Helper()
	var buf bytes.Buffer
	if err := dumpgen.Write(&buf, dumpgen.Spec{Services: 4, Subsets: 1, EndpointsPerCluster: 2, Ports: 2, Namespaces: 2}); err != nil {
		t.Fatal(err)
	}
	d, err := configdump.Parse(buf.Bytes(), configdump.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseIstioClusterName(t *testing.T) {
	for name, want := range map[string]IstioClusterName{
		"outbound|9080|v1|reviews.default.svc.cluster.local": {"outbound", "9080", "v1", "reviews.default.svc.cluster.local"},
		"inbound|8080||": {"inbound", "8080", "", ""},
		"inbound-vip|8000|http|httpbin.default.svc.cluster.local": {"inbound-vip", "8000", "http", "httpbin.default.svc.cluster.local"},
	} {
		got, ok := ParseIstioClusterName(name)
		if !ok || got != want {
			t.Errorf("%s: got %+v %v", name, got, ok)
		}
	}
	for _, name := range []string{"BlackHoleCluster", "a|b", "sideways|1|x|y", "outbound|1|2"} {
		if _, ok := ParseIstioClusterName(name); ok {
			t.Errorf("%s parsed as an Istio cluster name", name)
		}
	}
}

func TestClusterRowsAndFilters(t *testing.T) {
	d := generated(t)
	rows := Clusters(d, Filter{})
	if len(rows) != 8 {
		t.Fatalf("got %d rows, want 8", len(rows))
	}
	r := rows[1]
	if r.FQDN != "svc-0.ns-0.svc.cluster.local" || r.Port != "8000" || r.Subset != "v1" || r.Direction != "outbound" || r.Type != "EDS" || r.DestinationRule != "svc-0.ns-0" {
		t.Errorf("subset row: %+v", r)
	}
	if rows[0].Subset != "-" || rows[0].DestinationRule != "-" {
		t.Errorf("default-subset row: %+v", rows[0])
	}
	if got := Clusters(d, Filter{Subset: "v1", Port: 8001}); len(got) != 2 {
		t.Errorf("--subset v1 --port 8001: %d rows", len(got))
	}
	if got := Clusters(d, Filter{FQDN: "svc-3", Direction: "inbound"}); len(got) != 0 {
		t.Errorf("no inbound clusters exist, got %d", len(got))
	}
	if got := Resources(Clusters(d, Filter{FQDN: "svc-2."})); len(got) != 2 || !strings.Contains(string(got[0].Raw), "svc-2.ns-0") {
		t.Errorf("resources behind the rows: %d", len(got))
	}
}

func TestListenerRouteEndpointRows(t *testing.T) {
	d := generated(t)
	ls := Listeners(d, Filter{Port: 8001})
	if len(ls) != 1 || ls[0].AddressPort() != "0.0.0.0:8001" || ls[0].Match != "Trans: raw_buffer; App: http/1.1,h2c" || ls[0].Destination != "Route: 8001" {
		t.Errorf("listener rows: %+v", ls)
	}
	rs := Routes(d, Filter{Name: "8000"})
	if len(rs) != 2 {
		t.Fatalf("route rows: %+v", rs)
	}
	if rs[0].Domains != "svc-0.ns-0.svc.cluster.local:8000, svc-0.ns-0.svc.cluster.local +1 more" || rs[0].Match != "/*" || rs[0].VirtualService != "svc-0.ns-0" {
		t.Errorf("route row: %+v", rs[0])
	}
	eps := Endpoints(d, Filter{Cluster: "outbound|8000|v1|svc-0"})
	if len(eps) != 2 || eps[0].Status != "HEALTHY" || eps[0].OutlierCheck != "-" || !strings.HasPrefix(eps[0].Address(), "198.18.") {
		t.Errorf("endpoint rows: %+v", eps)
	}
	if got := Endpoints(d, Filter{Status: "unhealthy"}); len(got) != 0 {
		t.Errorf("no unhealthy endpoints exist, got %d", len(got))
	}
}

func TestCompare(t *testing.T) {
	a, b := generated(t), generated(t)
	if d, err := Compare(a, b); err != nil || !d.Empty() {
		t.Fatalf("identical dumps: %+v %v", d, err)
	}
	// Drop one listener and one cluster from b.
	var kept []*configdump.Resource
	for _, r := range b.Resources {
		if (r.Kind == configdump.KindListener && r.Name == "0.0.0.0_8000") || (r.Kind == configdump.KindCluster && strings.HasPrefix(r.Name, "outbound|8001|v1|svc-1")) {
			continue
		}
		kept = append(kept, r)
	}
	b.Resources = kept
	d, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range d.Resources {
		got = append(got, r.Change+" "+string(r.Kind)+" "+r.Name)
	}
	want := "removed cluster outbound|8001|v1|svc-1.ns-1.svc.cluster.local,removed listener 0.0.0.0_8000"
	if strings.Join(got, ",") != want {
		t.Errorf("got %q, want %q", strings.Join(got, ","), want)
	}
	// Reversed, the same resources are added.
	d, _ = Compare(b, a)
	if len(d.Resources) != 2 || d.Resources[0].Change != Added {
		t.Errorf("reverse: %+v", d.Resources)
	}
}
