package latchkey

import (
	"sync"
	"sync/atomic"
	"testing"
)

// A caller yields before a blocking call only when the last yield through
// the same Mutex is yieldEvery old, and one caller claims each yield.
func TestSchedTickClaimsOneYieldPerPeriod(t *testing.T) {
	var tick schedTick
	period := int64(yieldEvery)
	start := 10 * period
	if !tick.claim(start) {
		t.Fatal("no yield recorded yet: the first call should yield")
	}
	for _, now := range []int64{start, start + 1, start + period - 1} {
		if tick.claim(now) {
			t.Fatalf("yielded again %d ns after the last yield (period %d ns)", now-start, period)
		}
	}
	if !tick.claim(start + period) {
		t.Fatal("a call a full period after the last yield should yield")
	}

	// Many callers at once, a period later: exactly one yields.
	now := start + 2*period
	var yields atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tick.claim(now) {
				yields.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := yields.Load(); n != 1 {
		t.Fatalf("%d concurrent callers yielded, want 1", n)
	}
}
