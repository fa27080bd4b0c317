package proxyconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"mesh.dev/mesh/internal/adminclient"
	"mesh.dev/mesh/internal/cli"
	"mesh.dev/mesh/internal/configdump"
)

// sourceFlags are the flags that say where a proxy's config comes from
// when no pod is named.
type sourceFlags struct {
	File         string
	AdminAddress string
	AdminPort    int
}

func (s *sourceFlags) bind(fs *pflag.FlagSet, withFile bool) {
	if withFile {
		fs.StringVarP(&s.File, "file", "f", "", "read a saved /config_dump from this file ('-' for standard input) instead of a live proxy")
	}
	fs.StringVar(&s.AdminAddress, "admin-address", "", "reach the proxy's admin API directly at host:port (VMs, local proxies) instead of through a pod")
	bindAdminPort(fs, &s.AdminPort)
}

func bindAdminPort(fs *pflag.FlagSet, p *int) {
	fs.IntVar(p, "admin-port", adminclient.DefaultPort, "the proxy's admin port inside a pod, for the port-forward")
}

// source is one resolved place to read a proxy's config from.
type source struct {
	Label     string // how the source is named in messages and diff headers
	File      string // a path, or "-" for standard input
	Admin     string // host:port of an admin API
	Pod       string
	Namespace string
	AdminPort int // the admin port inside the pod
}

// resolve picks the source from a pod argument and the flags; exactly one must be given.
func (s sourceFlags) resolve(c *cli.Context, args []string) (source, error) {
	given := 0
	for _, set := range []bool{len(args) > 0, s.File != "", s.AdminAddress != ""} {
		if set {
			given++
		}
	}
	switch {
	case given == 0:
		return source{}, cli.Usagef("name a pod (NAME[.NAMESPACE]), or give --admin-address HOST:PORT or -f FILE")
	case given > 1:
		return source{}, cli.Usagef("give only one of a pod name, --admin-address and -f")
	case s.File != "":
		return source{Label: s.File, File: s.File}, nil
	case s.AdminAddress != "":
		return source{Label: "admin://" + s.AdminAddress, Admin: s.AdminAddress}, nil
	}
	if s.AdminPort < 1 || s.AdminPort > 65535 {
		return source{}, cli.Usagef("--admin-port %d: expected a port between 1 and 65535", s.AdminPort)
	}
	src, err := podSource(c, args[0])
	src.AdminPort = s.AdminPort
	return src, err
}

func podSource(c *cli.Context, arg string) (source, error) {
	name, ns := adminclient.SplitPodName(arg)
	if ns == "" {
		var err error
		ns, _, err = c.Namespace()
		if err != nil {
			return source{}, fmt.Errorf("namespace for pod %q: %w", name, err)
		}
	}
	return source{Label: name + "." + ns, Pod: name, Namespace: ns}, nil
}

// parseDiffSource reads one side of `proxy-config diff`: admin://HOST:PORT,
// file://PATH, a path that exists (or "-"), or a pod NAME[.NAMESPACE].
func parseDiffSource(c *cli.Context, arg string) (source, error) {
	switch {
	case strings.HasPrefix(arg, "admin://"):
		addr := strings.TrimPrefix(arg, "admin://")
		if addr == "" {
			return source{}, cli.Usagef("%q: expected admin://HOST:PORT", arg)
		}
		return source{Label: arg, Admin: addr}, nil
	case strings.HasPrefix(arg, "file://"):
		return source{Label: arg, File: strings.TrimPrefix(arg, "file://")}, nil
	case strings.HasPrefix(arg, "pod://"):
		return podSource(c, strings.TrimPrefix(arg, "pod://"))
	case arg == "-":
		return source{Label: "stdin", File: "-"}, nil
	}
	if _, err := os.Stat(arg); err == nil || strings.ContainsAny(arg, `/\`) || strings.HasSuffix(arg, ".json") {
		return source{Label: arg, File: arg}, nil
	}
	return podSource(c, arg)
}

// fetchWant says which admin endpoints a command needs.
type fetchWant struct {
	EDS      bool // ask /config_dump for endpoint assignments too
	Clusters bool // also fetch /clusters?format=json for live endpoint health
}

// load reads the dump from src and parses it, decoding only opts.Kinds.
// Malformed dumps come back as cli.Data errors (exit 65).
func load(ctx context.Context, c *cli.Context, src source, want fetchWant, opts configdump.Options) (*configdump.Dump, error) {
	if src.File != "" {
		data, err := readFile(c, src.File)
		if err != nil {
			return nil, err
		}
		return parse(src.Label, data, opts)
	}
	return withAdmin(ctx, c, src, func(client *adminclient.Client) (*configdump.Dump, error) {
		data, err := client.ConfigDump(ctx, want.EDS)
		if err != nil {
			return nil, err
		}
		d, err := parse(src.Label, data, opts)
		if err != nil || !want.Clusters {
			return d, err
		}
		cl, err := client.Clusters(ctx)
		if err != nil {
			return nil, err
		}
		hs, err := parse(src.Label+" /clusters", cl, configdump.Options{})
		if err != nil {
			return nil, err
		}
		d.HostStatuses = hs.HostStatuses
		return d, nil
	})
}

// withAdmin runs fn against src's admin API, opening a port-forward first for a pod.
func withAdmin[T any](ctx context.Context, c *cli.Context, src source, fn func(*adminclient.Client) (T, error)) (T, error) {
	var zero T
	addr := src.Admin
	if src.Pod != "" {
		cfg, err := c.RESTConfig()
		if err != nil {
			return zero, fmt.Errorf("kubeconfig: %w", err)
		}
		port := src.AdminPort
		if port == 0 {
			port = adminclient.DefaultPort
		}
		fw, err := adminclient.PortForward(ctx, cfg, src.Namespace, src.Pod, port, c.ErrOut)
		if err != nil {
			return zero, err
		}
		defer fw.Close()
		addr = fw.LocalAddress
	}
	client, err := adminclient.New(addr)
	if err != nil {
		return zero, cli.Usage(err)
	}
	return fn(client)
}

func readFile(c *cli.Context, path string) ([]byte, error) {
	if path == "-" {
		data, err := io.ReadAll(c.In)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, cli.Usagef("-f %s: no such file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

func parse(label string, data []byte, opts configdump.Options) (*configdump.Dump, error) {
	d, err := configdump.Parse(data, opts)
	if err != nil {
		return nil, cli.Data(fmt.Errorf("%s: %w", label, err))
	}
	return d, nil
}
