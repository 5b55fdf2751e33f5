//go:build !linux

package latchkey_test

import (
	"os/exec"
	"time"
)

func killWithParent(cmd *exec.Cmd) {}

var start = time.Now()

// sharedMonotonic: here monotonicNs is only comparable within one process,
// so the interval checks across processes are Linux-only.
const sharedMonotonic = false

func monotonicNs() int64 { return int64(time.Since(start)) }
