package agent

import (
	"net/netip"

	"google.golang.org/protobuf/reflect/protoreflect"
)

type netipAddrPort = netip.AddrPort

type protoreflectMessage = protoreflect.Message
