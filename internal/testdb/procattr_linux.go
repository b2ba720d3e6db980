package testdb

import "syscall"

// sysProcAttr makes the kernel kill mariadbd if the test binary dies without
// stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
