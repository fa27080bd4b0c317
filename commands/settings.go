package commands

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"mesh.dev/mesh/internal/cli"
)

// settingsFile returns $XDG_CONFIG_HOME/mesh/config.yaml (or ~/.config/mesh/config.yaml).
func settingsFile() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "mesh", "config.yaml")
}

// loadSettings fills every flag the user did not set from MESH_* environment
// variables and the settings file, in that order of precedence. A flag named
// "readiness-timeout" reads MESH_READINESS_TIMEOUT or the key readiness-timeout.
func loadSettings(cmd *cobra.Command) error {
	v := viper.New()
	v.SetEnvPrefix("MESH")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if path := settingsFile(); path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil && !errors.Is(err, os.ErrNotExist) {
			var notFound viper.ConfigFileNotFoundError
			if !errors.As(err, &notFound) && fileExists(path) {
				return cli.Dataf("read settings %s: %v (fix or remove the file)", path, err)
			}
		}
	}
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if firstErr != nil || f.Changed || !v.IsSet(f.Name) {
			return
		}
		for _, val := range settingValues(v.Get(f.Name)) {
			if err := cmd.Flags().Set(f.Name, val); err != nil {
				firstErr = cli.Usagef("setting %q from MESH_%s or %s: %v", f.Name,
					strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")), settingsFile(), err)
				return
			}
		}
	})
	return firstErr
}

// settingValues turns a settings value into the strings pflag.Set takes; lists set a repeated flag.
func settingValues(raw any) []string {
	switch t := raw.(type) {
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			out = append(out, fmt.Sprint(x))
		}
		return out
	default:
		return []string{fmt.Sprint(t)}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
