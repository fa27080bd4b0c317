package peermeta

import (
	"encoding/binary"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// The TCP metadata exchange (Istio's istio-peer-exchange protocol): once
// mTLS negotiated that ALPN protocol, each side writes, ahead of the
// stream's own bytes, a header (the magic number and the payload's length,
// both 32-bit big-endian) and the payload: a google.protobuf.Any holding a
// Struct whose x-envoy-peer-metadata field is the node metadata and whose
// x-envoy-peer-metadata-id field is the node id. The client writes first;
// the server answers once it has read the client's.

// Magic starts an exchange block.
const Magic uint32 = 0x3D230467

// ALPN is the protocol mesh mTLS negotiates when both sides exchange metadata.
const ALPN = "istio-peer-exchange"

const headerLen = 8

// ExchangeBlock is this node's exchange block, header included.
func (n *Node) ExchangeBlock() []byte {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{
		HeaderMetadata: structpb.NewStructValue(n.Struct()),
		HeaderID:       structpb.NewStringValue(n.ID),
	}}
	a, _ := anypb.New(s)
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	out := make([]byte, headerLen, headerLen+len(b))
	binary.BigEndian.PutUint32(out, Magic)
	binary.BigEndian.PutUint32(out[4:], uint32(len(b)))
	return append(out, b...)
}

// ErrNoExchange means the stream does not start with an exchange block.
var ErrNoExchange = fmt.Errorf("no metadata exchange block")

// ReadExchange reads the peer's exchange block from r. When the stream does
// not start with the magic number it returns ErrNoExchange and the bytes it
// read, which belong to the stream and must be passed on.
func ReadExchange(r io.Reader) (*Node, []byte, error) {
	var h [headerLen]byte
	if k, err := io.ReadFull(r, h[:]); err != nil {
		return nil, h[:k], err
	}
	if binary.BigEndian.Uint32(h[:]) != Magic {
		return nil, h[:], ErrNoExchange
	}
	size := binary.BigEndian.Uint32(h[4:])
	if size > maxEncoded {
		return nil, nil, fmt.Errorf("metadata exchange: payload of %d bytes, more than the %d accepted", size, maxEncoded)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, nil, fmt.Errorf("metadata exchange: payload: %w", err)
	}
	n, err := ParseExchange(b)
	return n, nil, err
}

// ParseExchange decodes an exchange block's payload.
func ParseExchange(b []byte) (*Node, error) {
	a := &anypb.Any{}
	if err := proto.Unmarshal(b, a); err != nil {
		return nil, fmt.Errorf("metadata exchange: payload is not a protobuf Any: %w", err)
	}
	s := &structpb.Struct{}
	if err := a.UnmarshalTo(s); err != nil {
		return nil, fmt.Errorf("metadata exchange: payload is not a Struct: %w", err)
	}
	n := FromStruct(s.GetFields()[HeaderMetadata].GetStructValue())
	n.ID = s.GetFields()[HeaderID].GetStringValue()
	return n, nil
}
