package listener

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzLeanParseHead feeds arbitrary request heads to the lean path's parser:
// it must never panic, and a head it accepts must be one net/http would
// also read the same way (method, target, Host, body length), or be handed off.
func FuzzLeanParseHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
		"GET /%41b HTTP/1.1\r\nHost: a\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		i := bytes.Index(head, []byte("\r\n\r\n"))
		if i < 0 {
			return
		}
		head = head[:i+4]
		lc := &leanConn{hdr: http.Header{}, rhdr: http.Header{}}
		lc.req.URL = &lc.url
		err := lc.parseHead(head)
		if err != nil {
			if !errors.Is(err, errHandOff) {
				t.Fatalf("parse error %v is not a hand-off", err)
			}
			return
		}
		r := &lc.req
		if r.Host == "" || r.ContentLength < 0 || r.ContentLength > leanMaxBody {
			t.Fatalf("accepted head with Host %q, length %d", r.Host, r.ContentLength)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.ContainsAny(k+v, "\r\n\x00") {
					t.Fatalf("header %q: %q carries a line break", k, v)
				}
			}
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("lean accepted a head net/http refuses (%v): %q", err, head)
		}
		if want.Method != r.Method || want.Host != r.Host || want.ContentLength != r.ContentLength || want.URL.Path != r.URL.Path || want.URL.RawQuery != r.URL.RawQuery {
			t.Fatalf("lean read %s %q host %q len %d; net/http read %s %q host %q len %d", r.Method, r.URL, r.Host, r.ContentLength,
				want.Method, want.URL, want.Host, want.ContentLength)
		}
	})
}
