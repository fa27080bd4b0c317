package demo

import (
	"reflect"
	"testing"
)

func TestCheckSynced(t *testing.T) {
	table := `NAME                                 CLUSTER      CDS                      LDS                      EDS          RDS                      ECDS    PILOT   VERSION
a-1.bookinfo                         Kubernetes   SYNCED (1w4vsk0xci9vj)   SYNCED (3l6i2zu9pdysc)   STALE (x)    SYNCED (2f7u28vr1qnjh)   NOT SENT   mesh-pilot-7d9f-x   0.3.0
b-1.bookinfo                         Kubernetes   SYNCED (1)               SYNCED (3)               SYNCED (2)   SYNCED (2)               NOT SENT   mesh-pilot-7d9f-x   0.3.0
c-1.bookinfo                         Kubernetes   SYNCED (1)               NOT SENT                 SYNCED (2)   NACK (2)                 SYNCED (4)   mesh-pilot-7d9f-x   0.3.0
mesh-egressgateway-1.mesh-system     Kubernetes   SYNCED (1)               SYNCED (1)               NOT SENT     NOT SENT                 NOT SENT   mesh-pilot-7d9f-x   0.3.0
mesh-ingressgateway-1.mesh-system    Kubernetes   SYNCED (1)               SYNCED (1)               SYNCED (1)   NOT SENT                 NOT SENT   mesh-pilot-7d9f-x   0.3.0
`
	missing, bad := checkSynced(table, []string{"a-1.bookinfo", "b-1.bookinfo", "c-1.bookinfo", "d-1.bookinfo", "mesh-egressgateway-1.mesh-system", "mesh-ingressgateway-1.mesh-system"})
	if !reflect.DeepEqual(missing, []string{"d-1.bookinfo"}) {
		t.Errorf("missing = %v, want d-1.bookinfo", missing)
	}
	want := []string{"a-1.bookinfo EDS=STALE (x)", "c-1.bookinfo LDS=NOT SENT", "c-1.bookinfo RDS=NACK (2)", "mesh-ingressgateway-1.mesh-system RDS=NOT SENT"}
	if !reflect.DeepEqual(bad, want) {
		t.Errorf("bad = %v, want %v", bad, want)
	}
}
