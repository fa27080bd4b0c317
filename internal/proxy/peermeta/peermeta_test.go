package peermeta

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func reviews() *Node {
	return &Node{ID: "sidecar~198.18.0.4~reviews-v1-0.default~default.svc.cluster.local", Name: "reviews-v1-0", Namespace: "default",
		WorkloadName: "reviews-v1", ServiceAccount: "bookinfo-reviews", ClusterID: "Kubernetes",
		Labels: map[string]string{"app": "reviews", "version": "v1"}}
}

func TestHeaderRoundTrip(t *testing.T) {
	n := reviews()
	got, err := ParseHeader(n.Header(), n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Workload() != "reviews-v1" || got.Namespace != "default" || got.App() != "reviews" || got.Version() != "v1" ||
		got.ClusterID != "Kubernetes" || got.ID != n.ID || got.Principal("cluster.local") != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
		t.Errorf("round trip: %+v", got)
	}
	// Canonical labels fall back to app and version, then to the workload and latest.
	if got.CanonicalService() != "reviews" || got.CanonicalRevision() != "v1" {
		t.Errorf("canonical %s/%s", got.CanonicalService(), got.CanonicalRevision())
	}
	bare := &Node{Name: "job-x", Namespace: "batch"}
	if bare.CanonicalService() != "job-x" || bare.CanonicalRevision() != "latest" {
		t.Errorf("bare canonical %s/%s", bare.CanonicalService(), bare.CanonicalRevision())
	}
}

func TestParseHeaderRefusesGarbage(t *testing.T) {
	for _, v := range []string{"%%%", "AAAA////", string(make([]byte, maxEncoded+1))} {
		if _, err := ParseHeader(v, ""); err == nil {
			t.Errorf("ParseHeader(%.20q) accepted", v)
		}
	}
}

func TestExchangeRoundTrip(t *testing.T) {
	n := reviews()
	stream := append(n.ExchangeBlock(), "payload"...)
	r := bytes.NewReader(stream)
	got, rest, err := ReadExchange(r)
	if err != nil || rest != nil {
		t.Fatalf("ReadExchange: %v (rest %q)", err, rest)
	}
	if got.Workload() != "reviews-v1" || got.ID != n.ID || got.Labels["version"] != "v1" {
		t.Errorf("exchanged %+v", got)
	}
	if tail, _ := io.ReadAll(r); string(tail) != "payload" {
		t.Errorf("the stream after the block is %q", tail)
	}
}

// A stream that does not start with a block gives its first bytes back, to be passed on.
func TestReadExchangeNotABlock(t *testing.T) {
	_, rest, err := ReadExchange(bytes.NewReader([]byte("GET / HTTP/1.1\r\n")))
	if !errors.Is(err, ErrNoExchange) || string(rest) != "GET / HT" {
		t.Fatalf("err %v rest %q", err, rest)
	}
	_, rest, err = ReadExchange(bytes.NewReader([]byte("hi")))
	if err == nil || string(rest) != "hi" {
		t.Fatalf("short stream: err %v rest %q", err, rest)
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(reviews().Header(), "id")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, v, id string) {
		n, err := ParseHeader(v, id)
		if err == nil {
			// What parses encodes again and parses to the same workload.
			m, err := ParseHeader(n.Header(), id)
			if err != nil || m.Workload() != n.Workload() || m.Namespace != n.Namespace {
				t.Fatalf("re-encoding %+v: %+v %v", n, m, err)
			}
		}
	})
}

func FuzzReadExchange(f *testing.F) {
	f.Add(reviews().ExchangeBlock())
	f.Add([]byte{0x3d, 0x23, 0x04, 0x67, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, rest, err := ReadExchange(bytes.NewReader(b))
		if err == nil && n == nil {
			t.Fatal("no error and no node")
		}
		if len(rest) > headerLen {
			t.Fatalf("gave back %d bytes, more than the header", len(rest))
		}
	})
}
