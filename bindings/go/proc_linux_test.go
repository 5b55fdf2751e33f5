package latchkey_test

import (
	"os/exec"
	"syscall"
	"unsafe"
)

// killWithParent makes cmd die with the test process (go test's timeout
// kills only the test binary).
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// sharedMonotonic: monotonicNs is one clock for all processes.
const sharedMonotonic = true

// monotonicNs reads CLOCK_MONOTONIC, one clock for every process on the
// machine (the Rust worker logs the same clock), so hold intervals recorded
// by different processes compare.
func monotonicNs() int64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		panic(errno)
	}
	return ts.Nano()
}
