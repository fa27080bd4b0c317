package pilot

import (
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"mesh.dev/mesh/internal/pilot/model"
)

// requireClientCertForXDS lets anyone reach the certificate service on the
// mTLS port (that is how workloads get their first certificate) but serves
// xDS there only to callers presenting a certificate the mesh CA issued,
// and only for proxies in the namespace of the certificate's SPIFFE
// identity: a workload of namespace A must not read namespace B's config
// and secrets by claiming one of its node ids.
func requireClientCertForXDS(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !strings.HasPrefix(info.FullMethod, "/envoy.service.") {
		return handler(srv, ss)
	}
	p, ok := peer.FromContext(ss.Context())
	if !ok {
		return status.Error(codes.Unauthenticated, "xDS on the mTLS port needs a client certificate from the mesh CA; use port 15010 for plaintext")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.PeerCertificates) == 0 {
		return status.Error(codes.Unauthenticated, "xDS on the mTLS port needs a client certificate from the mesh CA; use port 15010 for plaintext")
	}
	ns, err := spiffeNamespace(ti.State.PeerCertificates[0].URIs)
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	bound := &namespaceBoundStream{ServerStream: ss, namespace: ns}
	err = handler(srv, bound)
	// The xDS server ends a stream whose receive fails without saying why;
	// the refusal is the stream's status.
	if denied := bound.denied.Load(); denied != nil {
		return *denied
	}
	return err
}

// spiffeNamespace returns NS of the certificate's spiffe://TD/ns/NS/sa/SA identity.
func spiffeNamespace(uris []*url.URL) (string, error) {
	for _, u := range uris {
		if u.Scheme != "spiffe" {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		if len(parts) == 4 && parts[0] == "ns" && parts[1] != "" && parts[2] == "sa" && parts[3] != "" {
			return parts[1], nil
		}
		return "", fmt.Errorf("SPIFFE identity %q: want spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT", u.String())
	}
	return "", fmt.Errorf("no SPIFFE identity (spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT URI SAN)")
}

// namespaceBoundStream refuses requests whose node id names a proxy
// outside the client certificate's namespace.
type namespaceBoundStream struct {
	grpc.ServerStream
	namespace string
	denied    atomic.Pointer[error]
}

func (s *namespaceBoundStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	var id string
	switch r := m.(type) {
	case *discoveryv3.DiscoveryRequest:
		id = r.GetNode().GetId()
	case *discoveryv3.DeltaDiscoveryRequest:
		id = r.GetNode().GetId()
	}
	if id == "" {
		return nil
	}
	p, err := model.ParseNodeID(id)
	if err != nil {
		return nil // the xDS server refuses malformed ids, saying what is wrong
	}
	if p.Namespace != s.namespace {
		err := status.Errorf(codes.PermissionDenied, "node %q is in namespace %q but the client certificate's identity is in namespace %q", id, p.Namespace, s.namespace)
		s.denied.Store(&err)
		return err
	}
	return nil
}
