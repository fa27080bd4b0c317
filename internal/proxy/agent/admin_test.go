package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

func adminGet(t *testing.T, p *Proxy, path string) (int, string) {
	t.Helper()
	resp, err := client.Get("http://" + p.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func TestAdminConfigDumpParsesAsEnvoyConfigDump(t *testing.T) {
	a := startUpstream(t, "a", nil)
	cp := startControlPlane(t, "")
	port := freePort(t)
	v := cp.set(basicResources(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}, map[string][]*upstream{"a": {a}}))
	p := startProxy(t, cp.addr)
	eventually(t, "config", func() bool { return p.Store.Load().Version(resourcev3.RouteType) == v })

	code, body := adminGet(t, p, "/config_dump?include_eds")
	if code != 200 {
		t.Fatalf("/config_dump: %d %s", code, body)
	}
	var d adminv3.ConfigDump
	if err := protojson.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("/config_dump does not parse as admin.v3.ConfigDump: %v", err)
	}
	var types []string
	for _, c := range d.GetConfigs() {
		types = append(types, strings.TrimPrefix(c.GetTypeUrl(), "type.googleapis.com/envoy.admin.v3."))
	}
	if got := strings.Join(types, ","); got != "BootstrapConfigDump,ClustersConfigDump,EndpointsConfigDump,ListenersConfigDump,RoutesConfigDump,SecretsConfigDump" {
		t.Fatalf("config types %s", got)
	}
	var boot adminv3.BootstrapConfigDump
	d.GetConfigs()[0].UnmarshalTo(&boot)
	if boot.GetBootstrap().GetNode().GetId() != testNode {
		t.Fatalf("bootstrap node %q", boot.GetBootstrap().GetNode().GetId())
	}
	var clusters adminv3.ClustersConfigDump
	d.GetConfigs()[1].UnmarshalTo(&clusters)
	if len(clusters.GetDynamicActiveClusters()) != 1 || clusters.GetDynamicActiveClusters()[0].GetVersionInfo() != v || clusters.GetDynamicActiveClusters()[0].GetLastUpdated() == nil {
		t.Fatalf("dynamic_active_clusters: %v", clusters.GetDynamicActiveClusters())
	}
	var listeners adminv3.ListenersConfigDump
	d.GetConfigs()[3].UnmarshalTo(&listeners)
	if len(listeners.GetDynamicListeners()) != 1 || listeners.GetDynamicListeners()[0].GetActiveState().GetListener() == nil {
		t.Fatalf("dynamic_listeners must carry active_state.listener: %v", listeners.GetDynamicListeners())
	}
	// Envoy's JSON uses proto field names and @type.
	if !strings.Contains(body, `"dynamic_active_clusters"`) || !strings.Contains(body, `"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster"`) {
		t.Fatalf("dump is not in Envoy's JSON form:\n%.400s", body)
	}
	// Without include_eds there are no endpoints.
	_, plain := adminGet(t, p, "/config_dump")
	if strings.Contains(plain, "EndpointsConfigDump") {
		t.Fatal("EndpointsConfigDump without ?include_eds")
	}
	// ?resource= lists items; ?mask= prunes fields.
	_, res := adminGet(t, p, "/config_dump?resource=dynamic_active_clusters&mask=cluster.name")
	var rd adminv3.ConfigDump
	if err := protojson.Unmarshal([]byte(res), &rd); err != nil {
		t.Fatal(err)
	}
	if len(rd.GetConfigs()) != 1 || rd.GetConfigs()[0].GetTypeUrl() != "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster" {
		t.Fatalf("resource filter: %s", res)
	}
	if strings.Contains(res, "version_info") || strings.Contains(res, "connect_timeout") || !strings.Contains(res, `"name": "a"`) {
		t.Fatalf("mask=cluster.name should leave only the name: %s", res)
	}
	if code, _ := adminGet(t, p, "/config_dump?resource=nonsense"); code != 400 {
		t.Fatalf("unknown resource: %d, want 400", code)
	}
}

func TestAdminEndpoints(t *testing.T) {
	a := startUpstream(t, "a", nil)
	port := freePort(t)
	p := one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}, statsFilters(), staticCluster("a", a))
	for i := 0; i < 3; i++ {
		get(t, url(port, "/"))
	}
	_, clusters := adminGet(t, p, "/clusters")
	if !strings.Contains(clusters, "a::"+a.addr+"::rq_total::3") || !strings.Contains(clusters, "a::"+a.addr+"::health_flags::healthy") {
		t.Fatalf("/clusters:\n%s", clusters)
	}
	_, cj := adminGet(t, p, "/clusters?format=json")
	var cs adminv3.Clusters
	if err := protojson.Unmarshal([]byte(cj), &cs); err != nil || len(cs.GetClusterStatuses()) != 1 {
		t.Fatalf("/clusters?format=json: %v %s", err, cj)
	}
	_, ls := adminGet(t, p, "/listeners")
	if !strings.Contains(ls, "test::127.0.0.1:") {
		t.Fatalf("/listeners: %s", ls)
	}
	_, stats := adminGet(t, p, "/stats")
	if !strings.Contains(stats, "cluster.a.upstream_rq_2xx: 3") || !strings.Contains(stats, "http.test.downstream_rq_total: 3") {
		t.Fatalf("/stats:\n%s", stats)
	}
	_, prom := adminGet(t, p, "/stats/prometheus")
	if !strings.Contains(prom, `envoy_cluster_upstream_rq_2xx{envoy_cluster_name="a"} 3`) || !strings.Contains(prom, "istio_requests_total{") {
		t.Fatalf("/stats/prometheus:\n%.2000s", prom)
	}
	_, info := adminGet(t, p, "/server_info")
	var si adminv3.ServerInfo
	if err := protojson.Unmarshal([]byte(info), &si); err != nil || si.GetState() != adminv3.ServerInfo_LIVE || si.GetNode().GetId() != testNode {
		t.Fatalf("/server_info: %v %s", err, info)
	}
	if code, body := adminGet(t, p, "/ready"); code != 200 || strings.TrimSpace(body) != "LIVE" {
		t.Fatalf("/ready: %d %q", code, body)
	}
	if code, _ := adminGet(t, p, "/quitquitquit"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /quitquitquit: %d, want 405", code)
	}
	resp, err := client.Post("http://"+p.AdminAddr()+"/logging?level=debug", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /logging?level=debug: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = client.Post("http://"+p.AdminAddr()+"/quitquitquit", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /quitquitquit: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case <-p.Quit():
	default:
		eventually(t, "quit", func() bool {
			select {
			case <-p.Quit():
				return true
			default:
				return false
			}
		})
	}
}

func TestIstioMetricsLabels(t *testing.T) {
	a := startUpstream(t, "a", nil)
	port := freePort(t)
	p := one(t, port, []*routev3.Route{{Match: prefix("/"), Action: routeTo("outbound|9080||reviews.default.svc.cluster.local")}}, statsFilters(),
		staticCluster("outbound|9080||reviews.default.svc.cluster.local", a))
	get(t, url(port, "/"))
	mfs, err := p.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "istio_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			js, _ := json.Marshal(labels)
			if labels["destination_service"] == "reviews.default.svc.cluster.local" && labels["destination_service_name"] == "reviews" &&
				labels["destination_service_namespace"] == "default" && labels["response_code"] == "200" && labels["request_protocol"] == "http" &&
				m.GetCounter().GetValue() == 1 {
				found = true
			} else {
				t.Logf("series %s", js)
			}
		}
	}
	if !found {
		t.Fatal("no istio_requests_total series with the destination service, code 200 and count 1")
	}
}
