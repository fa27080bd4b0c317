package syncstatus

import (
	"strings"
	"testing"
)

func TestParseSyncz(t *testing.T) {
	got, err := ParseSyncz([]byte(`[{"proxy":"sidecar~198.18.0.9~b-1.ns~ns.svc.cluster.local","types":{"CDS":{"sent":"2","acked":"1","status":"STALE"}}},
	  {"proxy":"router~198.18.0.3~a-0.mesh-system~mesh-system.svc.cluster.local","types":{}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name() != "a-0.mesh-system" || got[1].Name() != "b-1.ns" {
		t.Fatalf("sorted by name: %+v", got)
	}
	if s := got[1].Status("CDS"); s.Status != "STALE" || s.Sent != "2" || s.Acked != "1" {
		t.Errorf("CDS: %+v", s)
	}
	if s := got[1].Status("ECDS"); s.Status != "NOT SENT" {
		t.Errorf("a type pilot did not report: %+v", s)
	}
	if _, err := ParseSyncz([]byte(`{"proxy":"x"}`)); err == nil || !strings.Contains(err.Error(), "JSON array") {
		t.Errorf("object instead of array: %v", err)
	}
	if NodeName("not-an-istio-id") != "not-an-istio-id" {
		t.Error("other ids are kept whole")
	}
}
