package pilot

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mesh.dev/mesh/internal/version"
)

// TestBuildInfo: istio_build names pilot and its version, and
// istiod_uptime_seconds counts from the start given.
func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	registerBuildInfo(reg, time.Now().Add(-90*time.Second))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "istio_build":
				l := map[string]string{}
				for _, p := range m.GetLabel() {
					l[p.GetName()] = p.GetValue()
				}
				got[mf.GetName()] = l["component"] == "pilot" && l["tag"] == version.Version && m.GetGauge().GetValue() == 1
			case "istiod_uptime_seconds":
				got[mf.GetName()] = m.GetGauge().GetValue() >= 90
			}
		}
	}
	if !got["istio_build"] || !got["istiod_uptime_seconds"] {
		t.Errorf("build info %v: want istio_build{component=pilot,tag=%s} 1 and istiod_uptime_seconds >= 90", mfs, version.Version)
	}
}
