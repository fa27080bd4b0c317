//go:build unix

package resource

import (
	"os"
	"syscall"
)

// mapFile maps a regular file read-only; mapped is false (and data the
// file's contents, read) when it cannot be mapped, such as an empty file
// or a pipe.
func mapFile(path string) (data []byte, mapped bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if st.Mode().IsRegular() && st.Size() > 0 && st.Size() < 1<<31 {
		if data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE); err == nil {
			return data, true, nil
		}
	}
	data, err = os.ReadFile(path)
	return data, false, err
}
