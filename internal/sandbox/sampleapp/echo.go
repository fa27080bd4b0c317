package sampleapp

import (
	"fmt"
	"net/http"

	"golang.org/x/net/websocket"
)

// echo is the echo role: a WebSocket echo at /ws (each message sent back as
// it came) and, elsewhere, a plain text line naming what arrived, so a test
// sees the path and Host the app got after the mesh routed the request.
func echo(mux *http.ServeMux) {
	// A websocket.Server without a Handshake takes any Origin: the callers
	// are tests and other services, not browsers.
	mux.Handle("/ws", websocket.Server{Handler: func(ws *websocket.Conn) {
		defer ws.Close()
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, msg); err != nil {
				return
			}
		}
	}})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "echo %s %s host %s from %s\n", r.Method, r.URL.Path, r.Host, hostname())
	})
}
