package agent

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	xdsmatcher "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	gpmatcher "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/matcher/v3"
	gprouter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/router/v3"
	gpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/generic_proxy/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	statspb "istio.io/api/envoy/extensions/stats"
)

// kvrpc is a private protocol this test makes up, which mesh-proxy only
// knows from its description in the declarative codec's config:
//
//	0  magic "KV"         2 bytes
//	2  version            1 byte
//	3  kind               1 byte: 0 request, 1 response, 2 one-way
//	4  body length        4 bytes big-endian: the bytes after the 18-byte header
//	8  request id         8 bytes little-endian
//	16 pair count         2 bytes big-endian
//	18 pairs              key length (1 byte), key, value length (2 bytes big-endian), value
//	   payload            the rest
type kvFrame struct {
	kind    byte
	id      uint64
	pairs   [][2]string
	payload string
}

func (f kvFrame) encode() []byte {
	var body []byte
	for _, p := range f.pairs {
		body = append(body, byte(len(p[0])))
		body = append(body, p[0]...)
		body = binary.BigEndian.AppendUint16(body, uint16(len(p[1])))
		body = append(body, p[1]...)
	}
	body = append(body, f.payload...)
	h := []byte{'K', 'V', 1, f.kind}
	h = binary.BigEndian.AppendUint32(h, uint32(len(body)))
	h = binary.LittleEndian.AppendUint64(h, f.id)
	h = binary.BigEndian.AppendUint16(h, uint16(len(f.pairs)))
	return append(h, body...)
}

func readKV(r *bufio.Reader) (kvFrame, error) {
	h := make([]byte, 18)
	if _, err := io.ReadFull(r, h); err != nil {
		return kvFrame{}, err
	}
	if h[0] != 'K' || h[1] != 'V' {
		return kvFrame{}, fmt.Errorf("bad magic %q", h[:2])
	}
	body := make([]byte, binary.BigEndian.Uint32(h[4:]))
	if _, err := io.ReadFull(r, body); err != nil {
		return kvFrame{}, err
	}
	f := kvFrame{kind: h[3], id: binary.LittleEndian.Uint64(h[8:])}
	n := int(binary.BigEndian.Uint16(h[16:]))
	pos := 0
	for i := 0; i < n; i++ {
		kl := int(body[pos])
		k := string(body[pos+1 : pos+1+kl])
		pos += 1 + kl
		vl := int(binary.BigEndian.Uint16(body[pos:]))
		v := string(body[pos+2 : pos+2+vl])
		pos += 2 + vl
		f.pairs = append(f.pairs, [2]string{k, v})
	}
	f.payload = string(body[pos:])
	return f, nil
}

func (f kvFrame) get(key string) string {
	for _, p := range f.pairs {
		if p[0] == key {
			return p[1]
		}
	}
	return ""
}

// kvServer answers each request, concurrently and after the "delay" pair's
// milliseconds (so answers come out of order), with "<name>:<method>:<payload>".
type kvServer struct {
	name   string
	port   uint32
	oneway chan string
}

func startKVServer(t *testing.T, name string) *kvServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &kvServer{name: name, port: uint32(ln.Addr().(*net.TCPAddr).Port), oneway: make(chan string, 10)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var wmu sync.Mutex
				r := bufio.NewReader(c)
				for {
					f, err := readKV(r)
					if err != nil {
						return
					}
					if f.kind == 2 {
						s.oneway <- name + ":" + f.get("method") + ":" + f.payload
						continue
					}
					go func() {
						d, _ := strconv.Atoi(f.get("delay"))
						time.Sleep(time.Duration(d) * time.Millisecond)
						out := kvFrame{kind: 1, id: f.id, pairs: [][2]string{{"status", "ok"}}, payload: name + ":" + f.get("method") + ":" + f.payload}
						wmu.Lock()
						c.Write(out.encode())
						wmu.Unlock()
					}()
				}
			}()
		}
	}()
	return s
}

func kvrpcCodec(t *testing.T) *corev3.TypedExtensionConfig {
	return typedStruct(t, "type.googleapis.com/mesh.generic_proxy.codecs.declarative.v1alpha1.DeclarativeCodecConfig", map[string]any{
		"name":        "kvrpc",
		"header_size": 18,
		"magic":       "0x4B56",
		"length":      map[string]any{"offset": 4, "size": 4, "byte_order": "big", "covers": "after_header"},
		"request_id":  map[string]any{"offset": 8, "size": 8, "byte_order": "little"},
		"kind":        map[string]any{"offset": 3, "size": 1, "request": 0, "response": 1, "oneway": 2},
		"fields":      []any{map[string]any{"name": "version", "offset": 2, "size": 1, "type": "uint"}},
		"key_values":  map[string]any{"count": map[string]any{"offset": 16, "size": 2}, "key_length_size": 1, "value_length_size": 2},
		"method":      "method",
		"service":     "service",
	})
}

// TestDeclarativeCodecOnAPrivateProtocol: a protocol mesh-proxy has no code
// for, described in the declarative codec's config, from a bootstrap: a
// client pipelines requests on one connection and gets each answer under
// its own id though the servers answer out of order; requests are routed by
// method and by a key-value pair to two servers; a failing endpoint is
// retried past; a one-way message is delivered.
func TestDeclarativeCodecOnAPrivateProtocol(t *testing.T) {
	a, b, c := startKVServer(t, "a"), startKVServer(t, "b"), startKVServer(t, "c")
	bad := failingEndpoint(t)
	method := gpInput(t, &gpmatcher.MethodMatchInput{})
	retried := toCluster("flaky")
	retried.RetryPolicy = &corev3.RetryPolicy{NumRetries: wrapperspb.UInt32(3)}
	routes := &xdsmatcher.Matcher{
		MatcherType: &xdsmatcher.Matcher_MatcherList_{MatcherList: &xdsmatcher.Matcher_MatcherList{Matchers: []*xdsmatcher.Matcher_MatcherList_FieldMatcher{
			exactOn(t, method, "put", toCluster("b")),
			exactOn(t, gpInput(t, &gpmatcher.PropertyMatchInput{PropertyName: "tenant"}), "blue", toCluster("b")),
			exactOn(t, method, "flaky", retried),
		}}},
		OnNoMatch: gpAction(t, toCluster("a")),
	}
	gp := &gpv3.GenericProxy{
		StatPrefix:     "kvrpc",
		CodecConfig:    kvrpcCodec(t),
		RouteSpecifier: &gpv3.GenericProxy_RouteConfig{RouteConfig: &gpv3.RouteConfiguration{Name: "kvrpc", Routes: routes}},
		Filters:        []*corev3.TypedExtensionConfig{{Name: "envoy.filters.generic.router", TypedConfig: mustAny(t, &gprouter.Router{})}},
	}
	port := freePort(t)
	lis := genericListener(t, "kvrpc", port, gp)
	// Istio's stats filter before it, with a dimension for the method as a
	// Telemetry resource's tagOverrides would add.
	stats, err := anypb.New(&statspb.PluginConfig{Metrics: []*statspb.MetricConfig{{Name: "requests_total", Dimensions: map[string]string{"rpc_method": "request.method"}}}})
	if err != nil {
		t.Fatal(err)
	}
	lis.FilterChains[0].Filters = append([]*listenerv3.Filter{{Name: "istio.stats", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: stats}}}, lis.FilterChains[0].Filters...)
	p := staticProxy(t, []*listenerv3.Listener{lis},
		staticCluster("a", &upstream{addr: fmt.Sprintf("127.0.0.1:%d", a.port)}),
		staticCluster("b", &upstream{addr: fmt.Sprintf("127.0.0.1:%d", b.port)}),
		staticCluster("flaky", &upstream{addr: fmt.Sprintf("127.0.0.1:%d", c.port)}, &upstream{addr: fmt.Sprintf("127.0.0.1:%d", bad)}))
	var conn net.Conn
	eventually(t, "the kvrpc listener", func() bool {
		var err error
		conn, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		return err == nil
	})
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))

	// Ten requests at once, the first answered last.
	wants := map[uint64]string{}
	var out []byte
	for i := 0; i < 10; i++ {
		id := uint64(1<<40 + i) // ids wider than 32 bits travel intact
		m, server := "get", "a"
		pairs := [][2]string{{"service", "store"}, {"delay", strconv.Itoa(200 - 20*i)}}
		switch {
		case i%3 == 1:
			m, server = "put", "b"
		case i%3 == 2:
			pairs = append(pairs, [2]string{"tenant", "blue"})
			server = "b"
		}
		if i == 9 {
			m, server = "flaky", "c"
		}
		pairs = append(pairs, [2]string{"method", m})
		out = append(out, kvFrame{kind: 0, id: id, pairs: pairs, payload: "p" + strconv.Itoa(i)}.encode()...)
		wants[id] = server + ":" + m + ":p" + strconv.Itoa(i)
	}
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var order []uint64
	for len(order) < 10 {
		f, err := readKV(r)
		if err != nil {
			t.Fatalf("after %d responses: %v", len(order), err)
		}
		if f.kind != 1 || wants[f.id] == "" || f.payload != wants[f.id] || f.get("status") != "ok" {
			t.Fatalf("response id %d: kind %d %q; want %q", f.id, f.kind, f.payload, wants[f.id])
		}
		delete(wants, f.id)
		order = append(order, f.id)
	}
	if order[0] == 1<<40 {
		t.Fatalf("responses came in request order %v; the servers answer the first request last", order)
	}
	// The flaky method again and again: its cluster's failing endpoint is retried past.
	for i := 0; i < 6; i++ {
		conn.Write(kvFrame{kind: 0, id: uint64(i), pairs: [][2]string{{"method", "flaky"}}, payload: "again"}.encode())
		f, err := readKV(r)
		if err != nil || f.payload != "c:flaky:again" || f.id != uint64(i) {
			t.Fatalf("flaky call %d: %+v %v", i, f, err)
		}
	}
	conn.Write(kvFrame{kind: 2, id: 77, pairs: [][2]string{{"method", "log"}}, payload: "note"}.encode())
	select {
	case got := <-a.oneway:
		if got != "a:log:note" {
			t.Fatalf("one-way message arrived as %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the one-way message did not arrive")
	}
	// Each request is in Istio's request metrics, its protocol the codec's name.
	_, prom := adminGet(t, p, "/stats/prometheus")
	for _, want := range []string{`request_protocol="kvrpc"`, `response_code="200"`, `rpc_method="put"`, `rpc_method="flaky"`} {
		found := false
		for _, l := range strings.Split(prom, "\n") {
			if strings.HasPrefix(l, "istio_requests_total{") && strings.Contains(l, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no istio_requests_total series with %s:\n%s", want, grepLines(prom, "istio_requests_total"))
		}
	}
}
