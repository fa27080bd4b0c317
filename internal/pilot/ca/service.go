package ca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	securityapi "istio.io/api/security/v1alpha1"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Service is the gRPC certificate service (Istio's IstioCertificateService
// API): a workload sends a CSR with its ServiceAccount token and gets a
// certificate for that service account's SPIFFE identity, never another's.
type Service struct {
	securityapi.UnimplementedIstioCertificateServiceServer
	CA     *Authority
	Kube   kubernetes.Interface
	MaxTTL time.Duration // also the default
	Log    *slog.Logger
	// Audiences a token may be meant for besides the API server's own: the
	// injector projects sidecars' tokens for "istio-ca", so a stolen one is
	// of no use against the API server.
	Audiences []string
}

// Register adds the service to g.
func (s *Service) Register(g *grpc.Server) {
	securityapi.RegisterIstioCertificateServiceServer(g, s)
}

// CreateCertificate authenticates the caller and signs its CSR.
func (s *Service) CreateCertificate(ctx context.Context, req *securityapi.IstioCertificateRequest) (*securityapi.IstioCertificateResponse, error) {
	ns, sa, err := s.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	id := SPIFFEID(ns, sa)
	block, _ := pem.Decode([]byte(req.Csr))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, status.Error(codes.InvalidArgument, "csr: want a PEM \"CERTIFICATE REQUEST\" block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: signature does not match its key: %v", err)
	}
	for _, u := range csr.URIs {
		if u.String() != id {
			s.Log.Warn("refused a certificate for another identity", "caller", id, "requested", u.String())
			return nil, status.Errorf(codes.PermissionDenied, "csr asks for identity %s but the token belongs to %s", u, id)
		}
	}
	ttl := s.MaxTTL
	if req.ValidityDuration > 0 && time.Duration(req.ValidityDuration)*time.Second < ttl {
		ttl = time.Duration(req.ValidityDuration) * time.Second
	}
	chain, err := s.CA.SignWorkload(csr.PublicKey, id, ttl)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sign: %v", err)
	}
	resp := &securityapi.IstioCertificateResponse{}
	for rest := chain; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		resp.CertChain = append(resp.CertChain, string(pem.EncodeToMemory(b)))
	}
	resp.CertChain = append(resp.CertChain, string(s.CA.RootPEM()))
	s.Log.Info("issued workload certificate", "identity", id, "ttl", ttl)
	return resp, nil
}

// authenticate reviews the caller's bearer token with the API server and
// returns its service account.
func (s *Service) authenticate(ctx context.Context) (ns, sa string, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			token = strings.TrimSpace(t)
		}
	}
	if token == "" {
		return "", "", status.Error(codes.Unauthenticated, "no bearer token: send the ServiceAccount token in the authorization metadata")
	}
	review := func(audiences []string) (*authnv1.TokenReview, error) {
		return s.Kube.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{Token: token, Audiences: audiences},
		}, metav1.CreateOptions{})
	}
	tr, err := review(nil)
	if err == nil && !tr.Status.Authenticated && len(s.Audiences) > 0 {
		tr, err = review(s.Audiences)
	}
	if err != nil {
		return "", "", status.Errorf(codes.Unavailable, "token review: %v", err)
	}
	if !tr.Status.Authenticated {
		return "", "", status.Errorf(codes.Unauthenticated, "token rejected: %s", tr.Status.Error)
	}
	parts := strings.Split(tr.Status.User.Username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" {
		return "", "", status.Errorf(codes.PermissionDenied, "caller %q is not a service account", tr.Status.User.Username)
	}
	return parts[2], parts[3], nil
}
