package agent

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpinspector "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// listener_filters_timeout: a client that sends nothing for that long is
// disconnected, unless continue_on_listener_filters_timeout lets the
// connection go on to its filter chain, where a late request is served.
func TestListenerFiltersTimeout(t *testing.T) {
	up := startUpstream(t, "a", nil)
	closePort, continuePort := freePort(t), freePort(t)
	vhs := []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{Match: prefix("/"), Action: routeTo("a")}}}}
	withInspector := func(port uint32, cont bool) *listenerv3.Listener {
		l := inlineListener(t, port, vhs)
		l.Name = fmt.Sprintf("l%d", port)
		l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.http_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(t, &httpinspector.HttpInspector{})}}}
		l.ListenerFiltersTimeout = durationpb.New(100 * time.Millisecond)
		l.ContinueOnListenerFiltersTimeout = cont
		return l
	}
	staticProxy(t, []*listenerv3.Listener{withInspector(closePort, false), withInspector(continuePort, true)}, staticCluster("a", up))
	waitListening(t, closePort)
	waitListening(t, continuePort)

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", closePort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("silent client without continue_on_listener_filters_timeout: read %v, want the proxy to close (EOF)", err)
	}

	c2, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", continuePort))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	time.Sleep(300 * time.Millisecond) // past the inspection timeout
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil {
		t.Fatalf("late request with continue_on_listener_filters_timeout: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "a" {
		t.Errorf("late request: %d %q", resp.StatusCode, b)
	}
}
