package configdump

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// fixture reads a real Envoy dump from ../shared/fixtures/envoy next to the repository.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "..", "..", "shared", "fixtures", "envoy", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return data
}

func TestParseSidecarFixture(t *testing.T) {
	d, err := Parse(fixture(t, "sidecar-config-dump.json"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[Kind]int{}
	for _, r := range d.Resources {
		count[r.Kind]++
		if r.Message == nil {
			t.Errorf("%s %q at %s was not decoded (unknown types %v)", r.Kind, r.Name, r.Path, r.UnknownTypes)
		}
		if len(r.UnknownTypes) > 0 {
			t.Errorf("%s %q: every type in this dump is linked, got unknown %v", r.Kind, r.Name, r.UnknownTypes)
		}
	}
	want := map[Kind]int{KindBootstrap: 1, KindCluster: 3, KindEndpoint: 2, KindListener: 2, KindRoute: 1, KindSecret: 2}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%s: got %d resources, want %d", k, count[k], n)
		}
	}
	var names []string
	for _, r := range d.Of(KindCluster) {
		names = append(names, r.Name+"/"+string(r.State))
	}
	if got := strings.Join(names, ","); got != "agent/static,prometheus_stats/static,inbound-vip|8000|http|httpbin.default.svc.cluster.local/dynamic_active" {
		t.Errorf("clusters: %s", got)
	}
	c := d.Of(KindCluster)[2].Message.(*clusterv3.Cluster)
	if c.GetType() != clusterv3.Cluster_EDS {
		t.Errorf("cluster type %v, want EDS", c.GetType())
	}
	l := d.Of(KindListener)[1]
	if l.Name != "main_internal" || l.State != StateActive || l.VersionInfo == "" {
		t.Errorf("dynamic listener: name %q state %q version %q", l.Name, l.State, l.VersionInfo)
	}
	if !strings.HasPrefix(string(d.Of(KindSecret)[0].Raw), "{") || d.Of(KindSecret)[0].Name != "default" {
		t.Errorf("secret raw/name not kept: %q", d.Of(KindSecret)[0].Name)
	}
}

func TestParseBareBootstrap(t *testing.T) {
	d, err := Parse(fixture(t, "bootstrap-dump.json"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	bs := d.Of(KindBootstrap)
	if len(bs) != 1 {
		t.Fatalf("got %d bootstrap resources", len(bs))
	}
	b := bs[0].Message.(*bootstrapv3.Bootstrap)
	// The fixture writes this field in camelCase; it must still be read.
	if v := b.GetNode().GetUserAgentBuildVersion().GetVersion(); v.GetMajorNumber() != 1 || v.GetMinorNumber() != 18 {
		t.Errorf("user agent build version: %v", v)
	}
}

func TestParseOnlyRequestedKinds(t *testing.T) {
	d, err := Parse(fixture(t, "sidecar-config-dump.json"), Options{Kinds: []Kind{KindCluster}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Resources {
		if r.Kind != KindCluster {
			t.Errorf("asked for clusters, got %s %q", r.Kind, r.Name)
		}
	}
	if len(d.Resources) != 3 {
		t.Errorf("got %d clusters, want 3", len(d.Resources))
	}
}

const clusterDumpHead = `{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump","dynamic_active_clusters":[{"cluster":`

func TestUnknownAnyKeptRaw(t *testing.T) {
	cluster := `{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"outbound|80||a.b.svc.cluster.local","type":"EDS",
	  "typed_extension_protocol_options":{"example.filter":{"@type":"type.googleapis.com/example.v9.SecretSauce","spice":"hot","level":3}},
	  "connect_timeout":"1s"}`
	alien := `{"@type":"type.googleapis.com/example.v9.AlienCluster","name":"alien","tentacles":8}`
	doc := clusterDumpHead + cluster + `},{"cluster":` + alien + `}]},
	  {"@type":"type.googleapis.com/example.admin.v1.FutureConfigDump","things":[1,2]}]}`
	d, err := Parse([]byte(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs := d.Of(KindCluster)
	if len(cs) != 2 {
		t.Fatalf("got %d clusters", len(cs))
	}
	typed, ok := cs[0].Message.(*clusterv3.Cluster)
	if !ok {
		t.Fatalf("cluster with an unknown nested Any was not decoded")
	}
	if typed.GetConnectTimeout().GetSeconds() != 1 || typed.GetName() != "outbound|80||a.b.svc.cluster.local" {
		t.Errorf("known fields lost: %v", typed)
	}
	if got := cs[0].UnknownTypes; len(got) != 1 || got[0] != "type.googleapis.com/example.v9.SecretSauce" {
		t.Errorf("unknown types: %v", got)
	}
	if !strings.Contains(string(cs[0].Raw), `"spice":"hot"`) {
		t.Errorf("raw JSON lost the unknown extension: %s", cs[0].Raw)
	}
	if cs[1].Message != nil || cs[1].Name != "alien" || !strings.Contains(string(cs[1].Raw), "tentacles") {
		t.Errorf("resource of unknown type: message %v name %q raw %s", cs[1].Message, cs[1].Name, cs[1].Raw)
	}
	unk := d.Of(KindUnknown)
	if len(unk) != 1 || unk[0].TypeURL != "type.googleapis.com/example.admin.v1.FutureConfigDump" {
		t.Errorf("unknown config section: %+v", unk)
	}
}

func TestParseErrors(t *testing.T) {
	full := string(fixture(t, "sidecar-config-dump.json"))
	cases := []struct {
		name, in string
		want     []string // substrings of the message
	}{
		{"empty", "  \n", []string{"empty"}},
		{"truncated", full[:len(full)/2], []string{"truncated", "line "}},
		{"truncated in a string", clusterDumpHead + `{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cl`, []string{"truncated", "line 1"}},
		{"missing comma", strings.Replace(full, `"type": "STATIC",`, `"type": "STATIC"`, 1), []string{"line ", "configs[1]"}},
		{"not an object", `[1,2,3]`, []string{"expected a JSON object"}},
		{"no configs", `{"foo": 1}`, []string{`"configs"`}},
		{"config without type", `{"configs":[{"bootstrap":{}}]}`, []string{"@type", "configs[0]"}},
		{"bad field value", clusterDumpHead + `{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"x","connect_timeout":"soon"}}]}]}`,
			[]string{"dynamic_active_clusters[0].cluster", "connect_timeout"}},
		{"resource not an object", clusterDumpHead + `"nope"}]}]}`, []string{"dynamic_active_clusters[0].cluster", "expected the resource as a JSON object"}},
		{"trailing garbage", `{"configs":[]} x`, []string{"after the end"}},
		{"garbage literal", `{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","x":tru}]}`, []string{"literal"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in), Options{})
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) && !errors.Is(err, ErrEmpty) {
				t.Errorf("error is %T, want *ParseError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// A section not asked for is still checked for balanced structure.
func TestSkippedSectionStillChecked(t *testing.T) {
	doc := `{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","static_listeners":[{"listener": {"a": [1}}]}]}`
	if _, err := Parse([]byte(doc), Options{Kinds: []Kind{KindCluster}}); err == nil {
		t.Fatal("corrupt listeners section accepted when only clusters were asked for")
	}
}

func TestParseErrorPosition(t *testing.T) {
	doc := "{\n  \"configs\": [\n    {\"@type\": \"type.googleapis.com/envoy.admin.v3.ClustersConfigDump\",\n     \"static_clusters\": [ {\"cluster\": {\"name\": \"a\",,}} ]}\n  ]\n}\n"
	_, err := Parse([]byte(doc), Options{})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
	if pe.Line != 4 {
		t.Errorf("line %d, want 4 (%v)", pe.Line, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(fixture(f, "sidecar-config-dump.json"))
	f.Add(fixture(f, "bootstrap-dump.json"))
	f.Add([]byte(`{"configs":[]}`))
	f.Add([]byte(clusterDumpHead + `{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"x"}}]}]}`))
	f.Add([]byte(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump","dynamic_listeners":[{"name":"l","warming_state":{"listener":{"@type":"x.y/Z"}}}]}]}`))
	f.Add([]byte(`{"cluster_statuses":[{"name":"a","host_statuses":[]}]}`))
	f.Add([]byte(`{"@type":"type.googleapis.com/envoy.admin.v3.SecretsConfigDump","static_secrets":[{"name":"s","secret":{"@type":"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, Options{})
		if (d == nil) == (err == nil) {
			t.Fatalf("dump %v and error %v: exactly one must be set", d, err)
		}
		if err != nil {
			return
		}
		for _, r := range d.Resources {
			if r.Raw == nil {
				t.Fatalf("%s %q has no raw JSON", r.Kind, r.Name)
			}
		}
	})
}

func TestFieldsDecodeOnlyWhatIsAsked(t *testing.T) {
	doc := clusterDumpHead + `{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":"outbound|80|v1|a.b.svc.cluster.local",
	  "connect_timeout":"soon",
	  "metadata":{"filter_metadata":{"istio":{"config":"/apis/networking.istio.io/v1alpha3/namespaces/b/destination-rule/a","services":[{"host":"a"}]},"other":{"x":1}}}}}]}]}`
	d, err := Parse([]byte(doc), Options{Fields: map[Kind][]string{KindCluster: {"name", "metadata.filter_metadata.istio.config"}}})
	if err != nil {
		t.Fatalf("a field that was not asked for must not be decoded: %v", err)
	}
	r := d.Of(KindCluster)[0]
	c := r.Message.(*clusterv3.Cluster)
	if !r.Partial || c.GetName() != "outbound|80|v1|a.b.svc.cluster.local" {
		t.Errorf("partial %v, name %q", r.Partial, c.GetName())
	}
	md := c.GetMetadata().GetFilterMetadata()
	if got := md["istio"].GetFields()["config"].GetStringValue(); got != "/apis/networking.istio.io/v1alpha3/namespaces/b/destination-rule/a" {
		t.Errorf("istio config: %q", got)
	}
	if md["other"] != nil || md["istio"].GetFields()["services"] != nil {
		t.Errorf("fields outside the paths were decoded: %v", md)
	}
	if _, err := Parse([]byte(doc), Options{}); err == nil {
		t.Error("a full decode must reject the bad connect_timeout")
	}
}
