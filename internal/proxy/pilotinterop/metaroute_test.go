package pilotinterop

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"mesh.dev/mesh/internal/pilot/model"
)

// The Thrift service of these tests, written as the Thrift compiler writes
// Go code: `string <method>(1: string name)` for any method. Each server
// answers "<server>:<method>:<name>".

type rpcArgs struct{ name string }

func (a *rpcArgs) Write(ctx context.Context, p thrift.TProtocol) error {
	return writeRPCStruct(ctx, p, "args", 1, a.name)
}
func (a *rpcArgs) Read(ctx context.Context, p thrift.TProtocol) error {
	return readRPCStruct(ctx, p, 1, &a.name)
}

type rpcResult struct{ success string }

func (r *rpcResult) Write(ctx context.Context, p thrift.TProtocol) error {
	return writeRPCStruct(ctx, p, "result", 0, r.success)
}
func (r *rpcResult) Read(ctx context.Context, p thrift.TProtocol) error {
	return readRPCStruct(ctx, p, 0, &r.success)
}

func writeRPCStruct(ctx context.Context, p thrift.TProtocol, name string, id int16, v string) error {
	for _, err := range []error{p.WriteStructBegin(ctx, name), p.WriteFieldBegin(ctx, "v", thrift.STRING, id),
		p.WriteString(ctx, v), p.WriteFieldEnd(ctx), p.WriteFieldStop(ctx)} {
		if err != nil {
			return err
		}
	}
	return p.WriteStructEnd(ctx)
}

func readRPCStruct(ctx context.Context, p thrift.TProtocol, id int16, v *string) error {
	if _, err := p.ReadStructBegin(ctx); err != nil {
		return err
	}
	for {
		_, typ, fid, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return err
		}
		if typ == thrift.STOP {
			break
		}
		if fid == id && typ == thrift.STRING {
			if *v, err = p.ReadString(ctx); err != nil {
				return err
			}
		} else if err := p.Skip(ctx, typ); err != nil {
			return err
		}
		if err := p.ReadFieldEnd(ctx); err != nil {
			return err
		}
	}
	return p.ReadStructEnd(ctx)
}

// rpcServer is a real Apache Thrift TSimpleServer (THeader's server
// transport: it answers each client in the format it spoke).
type rpcServer struct {
	name string
	port uint32
}

func (s *rpcServer) Process(ctx context.Context, in, out thrift.TProtocol) (bool, thrift.TException) {
	method, _, seq, err := in.ReadMessageBegin(ctx)
	if err != nil {
		return false, thrift.WrapTException(err)
	}
	var a rpcArgs
	if err := a.Read(ctx, in); err != nil {
		return false, thrift.WrapTException(err)
	}
	in.ReadMessageEnd(ctx)
	out.WriteMessageBegin(ctx, method, thrift.REPLY, seq)
	(&rpcResult{s.name + ":" + method + ":" + a.name}).Write(ctx, out)
	out.WriteMessageEnd(ctx)
	if err := out.Flush(ctx); err != nil {
		return false, thrift.WrapTException(err)
	}
	return true, nil
}
func (s *rpcServer) ProcessorMap() map[string]thrift.TProcessorFunction  { return nil }
func (s *rpcServer) AddToProcessorMap(string, thrift.TProcessorFunction) {}

// A server's Stop waits this long for its connections (the proxy's pooled
// upstream ones stay open); the default is 60s.
func init() { thrift.ServerStopTimeout = time.Second }

func startRPCServer(t *testing.T, name string) *rpcServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	s := &rpcServer{name: name, port: uint32(n)}
	sock, err := thrift.NewTServerSocket(addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &thrift.TConfiguration{}
	srv := thrift.NewTSimpleServer4(s, sock, thrift.NewTHeaderTransportFactoryConf(nil, cfg), thrift.NewTHeaderProtocolFactoryConf(cfg))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Stop() })
	return s
}

// droppingEndpoint accepts connections and closes them at once, as a
// crashing server does.
func droppingEndpoint(t *testing.T) uint32 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// rpcClient is a real Apache Thrift client, framed binary.
type rpcClient struct{ client *thrift.TStandardClient }

func dialRPC(t *testing.T, addr string) *rpcClient {
	t.Helper()
	cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 20 * time.Second}
	sock := thrift.NewTSocketConf(addr, cfg)
	if err := sock.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	prot := thrift.NewTBinaryProtocolConf(thrift.NewTFramedTransportConf(sock, cfg), cfg)
	return &rpcClient{client: thrift.NewTStandardClient(prot, prot)}
}

func (c *rpcClient) call(method, name string) (string, error) {
	var r rpcResult
	_, err := c.client.Call(context.Background(), method, &rpcArgs{name}, &r)
	return r.success, err
}

// TestMetaRouteThriftThroughSidecar: a MetaRoute for a Thrift service,
// as pilot turns it into the client sidecar's generic_proxy route table,
// served over a real ADS stream to mesh-proxy; real Apache Thrift clients
// and servers on loopback. Calls are routed by method (exact, prefix and
// regex) to DestinationRule subsets, split by weight 1:3, retried past an
// endpoint that drops connections (and fail sometimes on a route without
// retries to the same endpoints), and a call no route names goes to the
// default route's subset.
func TestMetaRouteThriftThroughSidecar(t *testing.T) {
	a, b := startRPCServer(t, "a"), startRPCServer(t, "b")
	c, dropping := startRPCServer(t, "c"), droppingEndpoint(t)
	w, _ := world(t)
	doc := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: calc, namespace: default}
spec:
  hosts: [calc.example.com]
  addresses: [198.18.250.20]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: thrift, protocol: THRIFT}]
  endpoints:
  - {address: 127.0.0.1, ports: {thrift: %d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {thrift: %d}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: calc, namespace: default}
spec:
  host: calc.example.com
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: flaky, namespace: default}
spec:
  hosts: [flaky.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: tcp-thrift-flaky, protocol: TCP}]
  endpoints:
  - {address: 127.0.0.1, ports: {tcp-thrift-flaky: %d}}
  - {address: 127.0.0.1, ports: {tcp-thrift-flaky: %d}}
---
apiVersion: networking.mesh.io/v1alpha1
kind: MetaRoute
metadata: {name: calc, namespace: default}
spec:
  hosts: [calc.example.com]
  routes:
  - name: bye
    match: {attributes: {method: {exact: bye}}}
    route: [{destination: {host: calc.example.com, subset: v2}}]
  - name: admin
    match: {attributes: {method: {regex: "admin[0-9]+"}}}
    route: [{destination: {host: calc.example.com, subset: v2}}]
  - name: flaky
    match: {attributes: {method: {prefix: flaky}}}
    route: [{destination: {host: flaky.example.com, port: {number: 9090}}}]
    retries: {attempts: 3, retryOn: "connect-failure,reset"}
  - name: unretried
    match: {attributes: {method: {exact: unretried}}}
    route: [{destination: {host: flaky.example.com}}]
  - name: split
    match: {attributes: {method: {exact: split}}}
    route:
    - {destination: {host: calc.example.com, subset: v1}, weight: 25}
    - {destination: {host: calc.example.com, subset: v2}, weight: 75}
  - name: default
    route: [{destination: {host: calc.example.com, subset: v1}}]
`, a.port, b.port, c.port, dropping)
	if err := w.AddYAML([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	pc := pushContext(w)
	var dst atomic.Pointer[netip.AddrPort]
	dst.Store(ptr(netip.MustParseAddrPort("198.18.250.20:9090")))
	addr := startSidecarOutbound(t, pc, w.PodProxy(model.SidecarProxy, "productpage-v1"), &dst, nil)
	cl := dialRPC(t, addr)

	expect := func(method, want string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			got, err := cl.call(method, strconv.Itoa(i))
			if wantFull := want + ":" + method + ":" + strconv.Itoa(i); err != nil || got != wantFull {
				t.Fatalf("call %d of %s: %q, %v; want %q", i, method, got, err, wantFull)
			}
		}
	}
	expect("bye", "b", 10)      // method exact → subset v2
	expect("admin42", "b", 5)   // regex → v2
	expect("hello", "a", 10)    // no route names it: the default route, subset v1
	expect("admin", "a", 3)     // the regex matches whole names only
	expect("flakyone", "c", 30) // prefix; each call that meets the dropping endpoint is retried

	failed := 0
	for i := 0; i < 30; i++ {
		if _, err := dialRPC(t, addr).call("unretried", "x"); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Error("30 calls on the route without retries to a cluster with an endpoint that drops connections all succeeded; the retry test above proves nothing")
	}

	seen := map[string]int{}
	const calls = 400
	for i := 0; i < calls; i++ {
		got, err := cl.call("split", "x")
		if err != nil {
			t.Fatalf("split call %d: %v", i, err)
		}
		server, _, _ := strings.Cut(got, ":")
		seen[server]++
	}
	if seen["a"]+seen["b"] != calls || seen["a"] < calls*12/100 || seen["a"] > calls*38/100 {
		t.Errorf("%d calls split 25/75 between subsets v1 and v2 reached %v; want about 100 on a and 300 on b", calls, seen)
	}
}
