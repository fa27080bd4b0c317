package kube

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"

	"mesh.dev/mesh/internal/cli"
)

// ConnectError is a failure to talk to the cluster at all, reduced to one line
// that names the cause and what to try.
type ConnectError struct {
	Cause string
	Err   error
}

func (e *ConnectError) Error() string { return e.Cause }
func (e *ConnectError) Unwrap() error { return e.Err }

// FromCLI builds a Client from the --kubeconfig/--context flags of a command.
// A missing or unknown context is reported here, before any request is sent.
func FromCLI(ctx *cli.Context) (*Client, error) {
	loader := ctx.ConfigFlags.ToRawKubeConfigLoader()
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, &ConnectError{Cause: fmt.Sprintf("read kubeconfig: %v", err), Err: err}
	}
	name := raw.CurrentContext
	if ctx.ConfigFlags.Context != nil && *ctx.ConfigFlags.Context != "" {
		name = *ctx.ConfigFlags.Context
	}
	cfg, err := ctx.RESTConfig()
	if err != nil {
		switch {
		case name != "" && raw.Contexts[name] == nil:
			return nil, &ConnectError{Cause: fmt.Sprintf("kubeconfig context %q does not exist (known contexts: %s); pick one with --context",
				name, strings.Join(contextNames(raw.Contexts), ", ")), Err: err}
		case clientcmd.IsEmptyConfig(err):
			return nil, &ConnectError{Cause: "no cluster configured: set KUBECONFIG or pass --kubeconfig", Err: err}
		}
		return nil, &ConnectError{Cause: fmt.Sprintf("load cluster configuration: %v", err), Err: err}
	}
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	if name != "" {
		c.Target = fmt.Sprintf("context %q (%s)", name, cfg.Host)
	}
	return c, nil
}

func contextNames[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	slices.Sort(out)
	return out
}

// Explain turns a failed request into a one-line cause when the failure is
// about reaching or authenticating to the cluster; other errors pass through.
func (c *Client) Explain(err error) error {
	if err == nil {
		return nil
	}
	var ce *ConnectError
	if errors.As(err, &ce) {
		return err
	}
	var op *net.OpError
	var dns *net.DNSError
	var uerr *url.Error
	switch {
	case apierrors.IsUnauthorized(err):
		return &ConnectError{Cause: fmt.Sprintf("%s rejected the credentials (expired or invalid): log in again or choose another --context", c.Target), Err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &ConnectError{Cause: fmt.Sprintf("cannot reach %s: connection refused (is the cluster running? is --context right?)", c.Target), Err: err}
	case errors.As(err, &dns):
		return &ConnectError{Cause: fmt.Sprintf("cannot reach %s: host %q not found", c.Target, dns.Name), Err: err}
	case errors.As(err, &op), isTimeout(err):
		return &ConnectError{Cause: fmt.Sprintf("cannot reach %s: %v", c.Target, rootCause(err)), Err: err}
	case strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "tls:"):
		return &ConnectError{Cause: fmt.Sprintf("cannot trust %s: %v (check the kubeconfig's certificate authority)", c.Target, rootCause(err)), Err: err}
	case errors.As(err, &uerr):
		return &ConnectError{Cause: fmt.Sprintf("cannot reach %s: %v", c.Target, rootCause(err)), Err: err}
	}
	return err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// rootCause strips the wrapping layers a transport error collects, keeping the innermost message.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
