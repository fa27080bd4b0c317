package agent

import (
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	statspb "istio.io/api/envoy/extensions/stats"
)

// statsFilters is the stats filter as istiod puts it on an HCM (before the router).
func statsFilters() []*hcmv3.HttpFilter {
	a, err := anypb.New(&statspb.PluginConfig{})
	if err != nil {
		panic(err)
	}
	return []*hcmv3.HttpFilter{{Name: "istio.stats", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}}}
}
