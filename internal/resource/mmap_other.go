//go:build !unix

package resource

import "os"

// mapFile reads the file: there is no mapping here.
func mapFile(path string) ([]byte, bool, error) {
	data, err := os.ReadFile(path)
	return data, false, err
}
