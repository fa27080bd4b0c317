package resource

import "syscall"

// release tells the kernel the pages of a mapped file that was just
// parsed are not needed for now: they leave the process's resident set
// and come back from the page cache if a finding looks at them. The
// mapping itself stays for the Index.
func release(data []byte) { _ = syscall.Madvise(data, syscall.MADV_DONTNEED) }
