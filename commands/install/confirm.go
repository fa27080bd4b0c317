package install

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"mesh.dev/mesh/internal/cli"
)

// Confirm asks a yes/no question on a terminal. Without a terminal on in it
// never waits for input: it returns a usage error telling the caller to pass -y.
func Confirm(in io.Reader, out io.Writer, question string) (bool, error) {
	if !cli.IsTerminal(in) {
		return false, NeedYes()
	}
	fmt.Fprintf(out, "%s [y/N] ", question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("read the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

// NeedYes is the usage error for a confirmation that cannot be asked.
func NeedYes() error {
	return cli.Usagef("standard input is not a terminal, so mesh cannot ask for confirmation: pass -y to go ahead without asking")
}
