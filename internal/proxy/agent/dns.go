package agent

import (
	"fmt"
	"strconv"

	"mesh.dev/mesh/internal/proxy/dnsproxy"
	"mesh.dev/mesh/internal/proxy/logging"
)

// DNSCaptureEnv turns DNS proxying on, as in Istio (the injector writes it
// from proxyMetadata; it is also node metadata DNS_CAPTURE, which makes
// pilot send the name table).
const DNSCaptureEnv = "ISTIO_META_DNS_CAPTURE"

// resolvConf is where the pod's resolvers are read: the file the app's
// own lookups use, so forwarded queries go where they would have gone.
var resolvConf = "/etc/resolv.conf"

// dnsFromEnv is the DNS proxy's configuration when ISTIO_META_DNS_CAPTURE
// is true (nil when it is not set or false); a value that is not a bool
// is an error naming the variable. A resolv.conf that cannot be read
// leaves the proxy answering mesh names only (logged).
func dnsFromEnv(getenv func(string) string, resolvPath, namespace string) (*dnsproxy.Options, error) {
	v := getenv(DNSCaptureEnv)
	if v == "" {
		return nil, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return nil, fmt.Errorf("environment %s=%q: want true or false", DNSCaptureEnv, v)
	}
	if !on {
		return nil, nil
	}
	log := logging.Default.Logger("dns")
	rc, err := dnsproxy.ReadResolvConf(resolvPath)
	if err != nil {
		log.Warn("no upstream resolvers: names outside the mesh will not resolve", "err", err)
	}
	return &dnsproxy.Options{Upstreams: rc.Upstreams(), Search: rc.Search, Namespace: namespace, Log: log}, nil
}
