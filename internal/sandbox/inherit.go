package sandbox

import (
	"os"
	"strconv"
	"syscall"
)

// CloseInheritedOnExec marks every descriptor above stderr close-on-exec, so
// that a detached component does not keep what this process inherited: a
// lock held by the `flock` that ran the tests, say, which the component would
// then hold for as long as it runs. Descriptors Go opens are close-on-exec
// already; only inherited ones change.
func CloseInheritedOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
