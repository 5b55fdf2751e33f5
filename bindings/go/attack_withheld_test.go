package latchkey_test

// Attack on the Redlock restart delay from Go: Acquire(ctx) whose ctx
// deadline ends the wait while the masters are younger than the restart
// delay. WithRedlockRestartDelay's doc says Acquire "fails with ErrNoQuorum
// (saying why) when it stops waiting", as Rust's acquire_timeout,
// Python's acquire(timeout=) and C's latchkey_lock_acquire do.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"latchkey"
)

// Acquire(ctx) with a ctx deadline during the restart delay fails with
// ErrNoQuorum naming the restart delay, as Rust, Python and C do. Before,
// it failed with ErrTimeout + context.DeadlineExceeded ("lock '...' not
// acquired: context deadline exceeded"), 3 of 3 runs: ctx's timer fired
// first and cancelled the C call, so the reason was lost and a Go caller
// could not tell "held by another owner" from "masters too young".
func TestAttackWithheldAcquireCtxDeadlineSaysNoQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	urls := startMasters(t, 3)
	c, err := latchkey.OpenRedlock(urls, latchkey.WithCommandTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.NewMutex(uniqueName(t), latchkey.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	started := time.Now()
	h, err := m.Acquire(ctx)
	t.Logf("Acquire(ctx 700ms) during the restart delay: %v after %v (ErrNoQuorum %v, ErrTimeout %v, DeadlineExceeded %v)",
		err, time.Since(started), errors.Is(err, latchkey.ErrNoQuorum), errors.Is(err, latchkey.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded))
	if h != nil {
		t.Fatal("acquired on masters younger than the restart delay")
	}
	if !errors.Is(err, latchkey.ErrNoQuorum) || !strings.Contains(err.Error(), "restart delay") {
		t.Fatalf("Acquire(ctx) = %v; want ErrNoQuorum naming the restart delay (as Rust, Python, C and TryAcquire)", err)
	}
}
