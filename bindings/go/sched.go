package latchkey

// Keeping the Go scheduler out of the round trips: what a goroutine does
// before a cgo call that waits for Redis.

import (
	"runtime"
	"sync/atomic"
	"time"
)

// yieldEvery is how long goroutines may go on making blocking cgo calls
// through one Mutex without one of them passing through the scheduler.
//
// Why it must pass through it at all: a cgo call runs in the syscall state,
// and sysmon takes the P away from a call in progress once that P's
// scheduling tick has not moved for 10 ms (the runtime's preemption slice,
// forcePreemptNS). A goroutine that only locks and unlocks never gives its
// P up, so the tick stops moving; and a call that lost its P takes an
// idle one back on return without moving the tick either (Go 1.26's
// exitsyscall, which this was measured with). From
// then on every call longer than a sysmon tick (20 µs), that is every
// Redis round trip, loses its P: sysmon wakes, hands the P to an idle
// thread (waking it for nothing), sleeps, and is woken again by the call's
// return and by the next call. On the 2-core VM of `make bench` that was 4
// futex calls and 2 nanosleeps per acquire+release cycle, on the core
// redis-server needs, and a cycle 30-90 µs slower than the same two calls
// made from one C loop. A runtime.Gosched moves the tick; one every
// yieldEvery (well under 10 ms) keeps sysmon from retaking, and costs a
// few microseconds (a Gosched may wake an idle thread) per yieldEvery.
const yieldEvery = 2 * time.Millisecond

// schedTick records when goroutines using one Mutex last passed through
// the scheduler on their way to a blocking call.
type schedTick struct {
	last atomic.Int64 // nanoseconds since tickEpoch
}

var tickEpoch = time.Now()

// beforeBlockingCall yields the processor if no caller through this Mutex
// did for yieldEvery (see yieldEvery). Call it right before a cgo call that
// may wait for Redis.
func (t *schedTick) beforeBlockingCall() {
	if t.claim(int64(time.Since(tickEpoch))) {
		runtime.Gosched()
	}
}

// claim says whether the caller, at now (nanoseconds since tickEpoch),
// should yield: the last yield is yieldEvery old or more and no concurrent
// caller claimed this one first.
func (t *schedTick) claim(now int64) bool {
	last := t.last.Load()
	return now-last >= int64(yieldEvery) && t.last.CompareAndSwap(last, now)
}
