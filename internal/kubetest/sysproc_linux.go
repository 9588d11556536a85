package kubetest

import "syscall"

// sysProcAttr makes the kernel kill etcd and the apiserver if the test binary
// dies without stopping them.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
