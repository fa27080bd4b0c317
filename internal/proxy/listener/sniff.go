package listener

import (
	"bufio"
	"bytes"
)

// The http_inspector listener filter: it reads a plaintext connection's
// first bytes and names its protocol, "h2c" for the HTTP/2 connection
// preface, "http/1.1" or "http/1.0" for an HTTP/1.x request line, nothing
// for anything else, and filter chains match the name as an application
// protocol. Like Envoy's, it decides as soon as the bytes it has settle
// the question: a client whose first bytes cannot begin an HTTP request is
// TCP at once; only bytes that may still become one wait for more.

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// sniffSize is how many bytes the inspector reads at most: an HTTP/1.x
// request line longer than this is not recognised (Envoy's inspector
// stops at 8 KiB too).
const sniffSize = 8192

// sniffHTTP reads from br (whose first byte is buffered) until it can
// tell, and returns the protocol name, or "" when it is not HTTP. It stops
// early, returning what it has decided so far as not HTTP, when a read
// fails (the peer closed, or the inspection deadline passed); the error
// is returned with it.
func sniffHTTP(br *bufio.Reader) (string, error) {
	for {
		p, _ := br.Peek(br.Buffered())
		proto, done := classifyHTTP(p)
		if done {
			return proto, nil
		}
		if br.Buffered() >= br.Size() {
			return "", nil
		}
		// Wait for at least one more byte; a read takes whatever else has arrived.
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return "", err
		}
	}
}

// classifyHTTP names the protocol of a connection's first bytes p; done
// is false when p may still become an HTTP request and more bytes decide.
func classifyHTTP(p []byte) (proto string, done bool) {
	if len(p) == 0 {
		return "", false
	}
	if len(p) < len(h2Preface) && bytes.HasPrefix([]byte(h2Preface), p) {
		return "", false
	}
	if bytes.HasPrefix(p, []byte(h2Preface)) {
		return "h2c", true
	}
	return requestLine(p)
}

// requestLine reads an HTTP/1.x request line, "METHOD SP target SP
// HTTP/1.x CRLF": the method an upper-case token (letters, '-', '_'; at
// most 24), the target any run of visible characters.
func requestLine(p []byte) (string, bool) {
	i := 0
	for i < len(p) && (p[i] >= 'A' && p[i] <= 'Z' || p[i] == '-' || p[i] == '_') {
		i++
		if i > 24 {
			return "", true
		}
	}
	if i == len(p) {
		return "", false
	}
	if i == 0 || p[i] != ' ' {
		return "", true
	}
	i++
	start := i
	for i < len(p) && p[i] > ' ' && p[i] < 0x7f {
		i++
	}
	if i == len(p) {
		return "", false
	}
	if i == start || p[i] != ' ' {
		return "", true
	}
	i++
	rest := p[i:]
	for _, v := range []struct{ line, proto string }{{"HTTP/1.1\r\n", "http/1.1"}, {"HTTP/1.0\r\n", "http/1.0"}, {"HTTP/1.1\n", "http/1.1"}, {"HTTP/1.0\n", "http/1.0"}} {
		if bytes.HasPrefix(rest, []byte(v.line)) {
			return v.proto, true
		}
	}
	for _, v := range []string{"HTTP/1.1\r\n", "HTTP/1.0\r\n"} {
		if len(rest) < len(v) && bytes.HasPrefix([]byte(v), rest) {
			return "", false
		}
	}
	return "", true
}
