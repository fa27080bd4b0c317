package sampleapp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/websocket"
)

// TestEchoRole: the echo role sends each WebSocket message back as it came,
// message by message, and names the path and Host of a plain request.
func TestEchoRole(t *testing.T) {
	h, err := Handler(Config{Role: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	ws, err := websocket.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", "", "http://sampleapp.test")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, msg := range []string{"one", "two words", strings.Repeat("x", 70000)} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Errorf("echo of a %d-byte message: %d bytes back, want the same message", len(msg), len(got))
		}
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/some/path", nil)
	req.Host = "echo.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(body), "echo GET /some/path host echo.example from ") {
		t.Errorf("plain request answered %q, want the method, path and Host it got", body)
	}
}
