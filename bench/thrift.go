package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
)

// The thrift benchmark is issue #22's speed target: a Thrift call through
// two mesh-proxy sidecars with the generic_proxy filter and the Thrift codec
// on both (routing by method, request-id rewriting, pooled upstream
// connections) against the same call through the same two-proxy hop on the
// plain TCP proxy. The client and server are Apache Thrift's Go library
// (framed binary) in this process; CPU is summed over both proxies of a
// path from every thread's schedstat. Paths are interleaved round by round;
// each figure is the median.
func init() {
	register(Bench{Name: "thrift", Issue: 22, Run: runThriftBench})
}

const (
	thRounds   = 7
	thRequests = 20000
	thWorkers  = 8
)

type thPath struct {
	name  string
	port  int // the client sends here (the outbound sidecar)
	pids  []int
	stops []func()
}

func (p *thPath) cpu() time.Duration {
	var t time.Duration
	for _, pid := range p.pids {
		t += pcCPU(pid)
	}
	return t
}

func runThriftBench(env *Env) ([]Row, error) {
	bin := env.Bin("mesh-proxy")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s missing: run make build", bin)
	}
	dir, err := os.MkdirTemp("", "mesh-bench-thrift")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	upPort, stopUp, err := thServer()
	if err != nil {
		return nil, err
	}
	defer stopUp()
	var paths []*thPath
	for _, kind := range []string{"tcp", "generic"} {
		p, err := thStartPath(bin, dir, kind, upPort)
		if err != nil {
			return nil, err
		}
		defer func() {
			for _, s := range p.stops {
				s()
			}
		}()
		paths = append(paths, p)
	}
	cpu := map[string][]float64{}
	var errs []string
	for _, p := range paths { // warm up pools and connections
		if _, err := thLoad(p.port, 2000); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	for round := 0; round < thRounds; round++ {
		for _, p := range paths {
			c0 := p.cpu()
			n, err := thLoad(p.port, thRequests)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", p.name, err))
			}
			cpu[p.name] = append(cpu[p.name], (p.cpu()-c0).Seconds()*1000/float64(max(n, 1)))
		}
	}
	med := func(v []float64) (float64, string) {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2], fmt.Sprintf("%.4g–%.4g s over %d rounds", s[0], s[len(s)-1], len(s))
	}
	tcp, tcpSpread := med(cpu[paths[0].name])
	gp, gpSpread := med(cpu[paths[1].name])
	row := Row{
		Figure: fmt.Sprintf("%s: CPU seconds per 1000 Thrift calls, both sidecars (%d clients, closed loop, median; %s)", paths[1].name, thWorkers, gpSpread),
		Value:  gp, Unit: "s",
		Baseline: paths[0].name + " (" + tcpSpread + ")", BaselineValue: tcp,
		Target: "≤ 1.3× the TCP proxy path", Command: "go run ./bench -only thrift",
	}
	row.Met = Check(gp <= 1.3*tcp)
	if len(errs) > 0 {
		return []Row{row}, fmt.Errorf("%v", errs)
	}
	return []Row{row}, nil
}

// thServer is a Thrift server answering every call with its argument.
func thServer() (int, func(), error) {
	port, err := pxFreePort()
	if err != nil {
		return 0, nil, err
	}
	sock, err := thrift.NewTServerSocket(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return 0, nil, err
	}
	cfg := &thrift.TConfiguration{}
	srv := thrift.NewTSimpleServer4(thEcho{}, sock, thrift.NewTFramedTransportFactoryConf(thrift.NewTTransportFactory(), cfg), thrift.NewTBinaryProtocolFactoryConf(cfg))
	if err := srv.Listen(); err != nil {
		return 0, nil, err
	}
	go srv.Serve()
	return port, func() { sock.Close() }, nil
}

type thEcho struct{}

func (thEcho) Process(ctx context.Context, in, out thrift.TProtocol) (bool, thrift.TException) {
	name, _, seq, err := in.ReadMessageBegin(ctx)
	if err != nil {
		return false, thrift.WrapTException(err)
	}
	var a thString
	if err := a.Read(ctx, in); err != nil {
		return false, thrift.WrapTException(err)
	}
	in.ReadMessageEnd(ctx)
	out.WriteMessageBegin(ctx, name, thrift.REPLY, seq)
	(&thString{id: 0, v: a.v}).Write(ctx, out)
	out.WriteMessageEnd(ctx)
	return true, thrift.WrapTException(out.Flush(ctx))
}
func (thEcho) ProcessorMap() map[string]thrift.TProcessorFunction  { return nil }
func (thEcho) AddToProcessorMap(string, thrift.TProcessorFunction) {}

// thString is a struct with one string field (the call's argument, field 1, or its result, field 0).
type thString struct {
	id int16
	v  string
}

func (s *thString) Write(ctx context.Context, p thrift.TProtocol) error {
	p.WriteStructBegin(ctx, "s")
	p.WriteFieldBegin(ctx, "v", thrift.STRING, s.id)
	p.WriteString(ctx, s.v)
	p.WriteFieldEnd(ctx)
	p.WriteFieldStop(ctx)
	return p.WriteStructEnd(ctx)
}

func (s *thString) Read(ctx context.Context, p thrift.TProtocol) error {
	p.ReadStructBegin(ctx)
	for {
		_, typ, _, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return err
		}
		if typ == thrift.STOP {
			break
		}
		if typ == thrift.STRING {
			if s.v, err = p.ReadString(ctx); err != nil {
				return err
			}
		} else if err := p.Skip(ctx, typ); err != nil {
			return err
		}
		p.ReadFieldEnd(ctx)
	}
	return p.ReadStructEnd(ctx)
}

// thLoad makes n calls over thWorkers client connections and returns how many succeeded.
func thLoad(port, n int) (int, error) {
	var done, failed atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < thWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 10 * time.Second}
			sock := thrift.NewTSocketConf(fmt.Sprintf("127.0.0.1:%d", port), cfg)
			if err := sock.Open(); err != nil {
				first.CompareAndSwap(nil, err.Error())
				failed.Add(1)
				return
			}
			defer sock.Close()
			prot := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(sock, cfg), cfg)
			c := thrift.NewTStandardClient(prot, prot)
			ctx := context.Background()
			for int(done.Add(1)) <= n {
				var r thString
				if _, err := c.Call(ctx, "echo", &thString{id: 1, v: "hello from the client"}, &r); err != nil || r.v != "hello from the client" {
					first.CompareAndSwap(nil, fmt.Sprint(err))
					failed.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	ok := n - int(failed.Load())
	if failed.Load() > 0 {
		return ok, fmt.Errorf("%d calls failed (first: %v)", failed.Load(), first.Load())
	}
	return ok, nil
}

// thStartPath runs two mesh-proxy sidecars in a row, the outbound one
// sending to the inbound one, which sends to the server; kind is "tcp"
// (tcp_proxy) or "generic" (generic_proxy with the Thrift codec).
func thStartPath(bin, dir, kind string, upPort int) (*thPath, error) {
	p := &thPath{name: map[string]string{"tcp": "two mesh-proxy sidecars, tcp_proxy", "generic": "two mesh-proxy sidecars, generic_proxy + Thrift codec"}[kind]}
	next := upPort
	var ports []int
	for _, role := range []string{"inbound", "outbound"} {
		port, err := pxFreePort()
		if err != nil {
			return nil, err
		}
		bs := filepath.Join(dir, fmt.Sprintf("%s-%s.yaml", kind, role))
		if err := os.WriteFile(bs, []byte(thBootstrap(kind, role, port, next)), 0o644); err != nil {
			return nil, err
		}
		t, err := pxStart(p.name+" "+role, port, bin, "--bootstrap", bs, "--admin-address", "127.0.0.1:0", "--health-address", "", "--stats-address", "",
			"--log-level", "warn", "--memory-limit-mib", strconv.Itoa(pxMemLimitMiB), "--concurrency", strconv.Itoa(pxConcurrency))
		if err != nil {
			for _, s := range p.stops {
				s()
			}
			return nil, err
		}
		p.pids = append(p.pids, t.pid)
		p.stops = append(p.stops, t.stop)
		ports = append(ports, port)
		next = port
	}
	p.port = ports[1]
	return p, nil
}

func thBootstrap(kind, role string, port, upPort int) string {
	cluster := role + "|9090||calc.default.svc.cluster.local"
	var filter string
	if kind == "tcp" {
		filter = fmt.Sprintf(`      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: %s
          cluster: "%s"
`, role, cluster)
	} else {
		filter = fmt.Sprintf(`      - name: envoy.filters.network.generic_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.generic_proxy.v3.GenericProxy
          stat_prefix: %s
          codec_config:
            name: thrift
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: type.googleapis.com/mesh.generic_proxy.codecs.thrift.v1alpha1.ThriftCodecConfig
              value: {protocol: auto, transport: auto}
          route_config:
            name: calc
            routes:
              matcher_list:
                matchers:
                - predicate:
                    single_predicate:
                      input:
                        name: method
                        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.generic_proxy.matcher.v3.MethodMatchInput}
                      value_match: {exact: echo}
                  on_match:
                    action:
                      name: echo
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.filters.network.generic_proxy.action.v3.RouteAction
                        cluster: "%s"
                        retry_policy: {num_retries: 2}
          filters:
          - name: envoy.filters.generic.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.generic_proxy.router.v3.Router}
`, role, cluster)
	}
	return fmt.Sprintf(`node: {id: "sidecar~127.0.0.1~bench-1.default~default.svc.cluster.local"}
static_resources:
  listeners:
  - name: %s
    address: {socket_address: {address: 127.0.0.1, port_value: %d}}
    filter_chains:
    - filters:
%s  clusters:
  - name: "%s"
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: "%s"
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]
`, role, port, filter, cluster, cluster, upPort)
}
