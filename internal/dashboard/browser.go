package dashboard

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// ErrNoBrowser says there is no browser to open: no $BROWSER and, on
// Linux, no display or no xdg-open.
var ErrNoBrowser = errors.New("no browser found")

// Browser opens URLs. Env reads the environment (os.Getenv when nil).
type Browser struct {
	Env func(string) string
}

// Command returns the command that would open url, or ErrNoBrowser.
// $BROWSER wins (a command, or a list of them separated by ':' of which the
// first found is used, "%s" standing for the URL, as xdg-utils and Python's
// webbrowser read it); then xdg-open where there is a display (Linux),
// open (macOS) or the URL handler of Windows.
func (b Browser) Command(url string) (*exec.Cmd, error) {
	env := b.Env
	if env == nil {
		env = os.Getenv
	}
	if v := env("BROWSER"); v != "" {
		for _, c := range strings.Split(v, string(os.PathListSeparator)) {
			fields := strings.Fields(c)
			if len(fields) == 0 {
				continue
			}
			path, err := exec.LookPath(fields[0])
			if err != nil {
				continue
			}
			args, hadURL := []string{}, false
			for _, f := range fields[1:] {
				if strings.Contains(f, "%s") {
					f, hadURL = strings.ReplaceAll(f, "%s", url), true
				}
				args = append(args, f)
			}
			if !hadURL {
				args = append(args, url)
			}
			return exec.Command(path, args...), nil
		}
		return nil, fmt.Errorf("%w: none of $BROWSER (%s) is in PATH", ErrNoBrowser, v)
	}
	switch runtime.GOOS {
	case "darwin":
		return exec.Command("open", url), nil
	case "windows":
		return exec.Command("rundll32", "url.dll,FileProtocolHandler", url), nil
	}
	if env("DISPLAY") == "" && env("WAYLAND_DISPLAY") == "" {
		return nil, fmt.Errorf("%w: no display (DISPLAY and WAYLAND_DISPLAY are unset) and no $BROWSER", ErrNoBrowser)
	}
	path, err := exec.LookPath("xdg-open")
	if err != nil {
		return nil, fmt.Errorf("%w: xdg-open is not installed and $BROWSER is unset", ErrNoBrowser)
	}
	return exec.Command(path, url), nil
}

// Open starts the browser on url and does not wait for it.
func (b Browser) Open(url string) error {
	cmd, err := b.Command(url)
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	// Reap it whenever it exits; a browser may outlive the forward.
	go func() { _ = cmd.Wait() }()
	return nil
}
