package latchkey_test

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"latchkey"
)

// The shared-object case with the Hold API: two acquisitions through one
// Mutex are two holds, and nothing done through the first (whose lease ran
// out) touches the second.
func TestSharedMutexHolds(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(200*time.Millisecond), latchkey.WithAutoRenew(false))
	third := newMutex(t, openClient(t), name)
	a, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "A's lease to run out in Redis", func() bool {
		owner, err := lockOwner(redisURL, name)
		return err == nil && owner == ""
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := m.Acquire(ctx) // not held back by A: Acquire competes in Redis
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Extend(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if a.Token() == b.Token() || a.FencingToken() >= b.FencingToken() {
		t.Fatalf("A %s/%d, B %s/%d", a.Token(), a.FencingToken(), b.Token(), b.FencingToken())
	}
	if err := a.Check(); !errors.Is(err, latchkey.ErrLost) {
		t.Errorf("A's Check() = %v, want ErrLost", err)
	}
	if !isClosed(a.Lost()) {
		t.Error("A's Lost is open after Check found it lost")
	}
	if err := a.Extend(time.Second); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Errorf("A's Extend() = %v, want ErrNotHeld", err)
	}
	if err := a.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Errorf("A's Unlock() = %v, want ErrNotHeld", err)
	}
	if owner, err := lockOwner(redisURL, name); err != nil || owner != b.Token() {
		t.Errorf("Redis owner = %q (%v), B is %q", owner, err, b.Token())
	}
	if err := b.Check(); err != nil {
		t.Errorf("B's Check() = %v", err)
	}
	if isClosed(b.Lost()) {
		t.Error("B's Lost is closed")
	}
	if ok, err := third.TryLock(); ok || err != nil {
		t.Errorf("a third party's TryLock() = %v, %v while B holds", ok, err)
	}
	if err := b.Unlock(); err != nil {
		t.Errorf("B's Unlock() = %v", err)
	}
	if !isClosed(b.Lost()) {
		t.Error("B's Lost is open after Unlock")
	}
	if err := b.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Errorf("B's second Unlock() = %v, want ErrNotHeld", err)
	}
	if err := b.Check(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Errorf("B's Check() after Unlock = %v, want ErrNotHeld", err)
	}
}

// A second Lock on one Mutex waits here until the first hold is Unlocked,
// even if that hold's lease was lost (so Mutex methods never refer to
// another hold), while Acquire is not held back.
func TestMutexLockWaitsLocally(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(600*time.Millisecond))
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := m.Token()
	if _, err := c.ForceUnlock(name); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Lost after ForceUnlock", m.Lost())
	if ok, err := m.TryLock(); ok || err != nil {
		t.Fatalf("TryLock while the Mutex's Lock is not Unlocked = %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.Lock(ctx); !errors.Is(err, latchkey.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Lock = %v, want the deadline", err)
	}
	if m.Token() != first || !errors.Is(m.Check(), latchkey.ErrLost) {
		t.Fatalf("the Mutex now refers to %q (%v), not its lost hold %q", m.Token(), m.Check(), first)
	}
	h, err := m.TryAcquire()
	if err != nil || h == nil {
		t.Fatalf("TryAcquire on a free lock = %v, %v", h, err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Unlock of the lost hold = %v, want ErrNotHeld", err)
	}
	if ok, err := m.TryLock(); !ok || err != nil {
		t.Fatalf("TryLock after Unlock = %v, %v", ok, err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// Lost taken while the Mutex holds nothing closes when the Mutex is closed
// before any hold.
func TestLostBeforeLockClosesWithMutex(t *testing.T) {
	c := openClient(t)
	m, err := c.NewMutex(uniqueName(t))
	if err != nil {
		t.Fatal(err)
	}
	lost := m.Lost()
	if isClosed(lost) {
		t.Fatal("closed before anything happened")
	}
	m.Close()
	if !isClosed(lost) {
		t.Fatal("Lost of a closed Mutex is open")
	}
}

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// Holds kept only by their Hold values (every Mutex dropped at once), with
// runtime.GC() at random points between lock operations: no lock is freed
// while its hold is live (Redis is checked), every loss closes its hold's
// Lost channel, and every handle comes back at the end.
// LATCHKEY_GO_STRESS_ITERATIONS (default 2000) and LATCHKEY_GO_STRESS_SEED
// change the run; a failure prints the seed.
func TestStressGarbageCollection(t *testing.T) {
	iterations := envInt("LATCHKEY_GO_STRESS_ITERATIONS", 2000)
	seed := envInt("LATCHKEY_GO_STRESS_SEED", time.Now().UnixNano())
	t.Logf("seed %d (LATCHKEY_GO_STRESS_SEED), %d iterations", seed, iterations)
	rng := rand.New(rand.NewSource(seed))
	c := openClient(t)
	admin := openClient(t)
	before := settledHandles()
	const names = 8
	var lockNames [names]string
	for i := range lockNames {
		lockNames[i] = uniqueName(t)
	}
	var holds [names]*latchkey.Hold
	var acquired, unlocked, losses, expired, collections int
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format, append([]any{seed}, args...)...)
	}
	verify := func() {
		for i, h := range holds {
			owner, err := lockOwner(redisURL, lockNames[i])
			if err != nil {
				fail("GET: %v", err)
			}
			switch {
			case h == nil && owner != "":
				fail("%s is held by %q, which nobody holds here", lockNames[i], owner)
			case h != nil && owner != h.Token():
				// Only a loss the hold reports is allowed (a renewal that
				// came too late on a loaded machine): its Lost channel
				// closes and Check says ErrLost. A release behind the
				// holder's back would say nothing, or not ErrLost.
				select {
				case <-h.Lost():
				case <-time.After(10 * time.Second):
					fail("%s: Redis owner %q while hold %q is live, and no loss reported", lockNames[i], owner, h.Token())
				}
				if err := h.Check(); !errors.Is(err, latchkey.ErrLost) {
					fail("%s: Redis owner %q, hold %q ended with %v", lockNames[i], owner, h.Token(), err)
				}
				t.Logf("%s: lost on its own: %v", lockNames[i], h.Check())
				holds[i] = nil
				expired++
			case h != nil && isClosed(h.Lost()):
				fail("%s: Lost closed while held (%v)", lockNames[i], h.Check())
			}
		}
	}
	for it := int64(0); it < iterations; it++ {
		i := rng.Intn(names)
		switch op := rng.Intn(10); {
		case op < 4 && holds[i] == nil:
			// A Mutex per acquisition, dropped straight away.
			m, err := c.NewMutex(lockNames[i], latchkey.WithTTL(time.Duration(150+rng.Intn(300))*time.Millisecond))
			if err != nil {
				fail("NewMutex: %v", err)
			}
			h, err := m.TryAcquire()
			if err != nil || h == nil {
				fail("TryAcquire of a free lock = %v, %v", h, err)
			}
			holds[i] = h
			acquired++
		case op < 7 && holds[i] != nil:
			if err := holds[i].Unlock(); err != nil {
				// Only a lease that ran out before the unlock (its renewal
				// came too late on a loaded machine; the ttls here are
				// 150-450 ms) may fail it, and only as "not held": never
				// a hold freed or released behind its holder's back,
				// which verify() catches while the hold is live.
				if !errors.Is(err, latchkey.ErrNotHeld) {
					fail("Unlock: %v", err)
				}
				t.Logf("%s: ran out before its unlock: %v", lockNames[i], err)
				expired++
			} else {
				unlocked++
			}
			holds[i] = nil
		case op == 7 && holds[i] != nil:
			h := holds[i]
			if deleted, err := admin.ForceUnlock(lockNames[i]); err != nil || !deleted {
				fail("ForceUnlock = %v, %v", deleted, err)
			}
			select {
			case <-h.Lost():
			case <-time.After(10 * time.Second):
				fail("Lost not closed 10 s after ForceUnlock")
			}
			if err := h.Check(); !errors.Is(err, latchkey.ErrLost) {
				fail("Check after the loss = %v", err)
			}
			if rng.Intn(2) == 0 {
				if err := h.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
					fail("Unlock after the loss = %v", err)
				}
			} // else the lost hold is just dropped: the collector frees it
			holds[i] = nil
			losses++
		case op == 8:
			runtime.GC()
			collections++
		default:
			verify()
		}
		if rng.Intn(50) == 0 {
			// Let renewals happen while nothing references the Mutexes.
			time.Sleep(time.Duration(rng.Intn(100)) * time.Millisecond)
			runtime.GC()
			verify()
		}
	}
	verify()
	for i, h := range holds {
		if h != nil {
			if err := h.Unlock(); err != nil {
				fail("final Unlock: %v", err)
			}
			holds[i] = nil
		}
	}
	verify()
	t.Logf("%d acquired, %d unlocked, %d force-unlocked and reported lost, %d lost on their own, %d collections",
		acquired, unlocked, losses, expired, collections)
	waitUntil(t, "every handle to come back", func() bool {
		runtime.GC()
		return latchkey.LiveHandles() == before
	})
}

// Nested holds of a reentrant Mutex are holds of their own: distinct owner
// tokens, an inner Unlock leaves the outer hold alone, and a loss of the
// lock closes the Lost channel of every live hold exactly once.
func TestReentrantHolds(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithReentrant(true), latchkey.WithTTL(600*time.Millisecond))
	var holds []*latchkey.Hold
	for i := 0; i < 3; i++ {
		h, err := m.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range holds {
			if o.Token() == h.Token() {
				t.Fatalf("nested holds share the token %s", h.Token())
			}
		}
		holds = append(holds, h)
	}
	if err := holds[1].Unlock(); err != nil {
		t.Fatal(err)
	}
	if !isClosed(holds[1].Lost()) || isClosed(holds[0].Lost()) || isClosed(holds[2].Lost()) {
		t.Fatal("an inner Unlock ended the wrong holds")
	}
	if err := holds[0].Check(); err != nil {
		t.Fatalf("outer Check after an inner Unlock = %v", err)
	}
	if _, err := c.ForceUnlock(name); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "outer Lost after ForceUnlock", holds[0].Lost())
	waitClosed(t, "inner Lost after ForceUnlock", holds[2].Lost())
	for _, i := range []int{0, 2} {
		if err := holds[i].Check(); !errors.Is(err, latchkey.ErrLost) {
			t.Errorf("hold %d Check = %v, want ErrLost", i, err)
		}
		if err := holds[i].Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
			t.Errorf("hold %d Unlock = %v, want ErrNotHeld", i, err)
		}
	}
	if err := holds[1].Check(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Errorf("unlocked hold's Check = %v, want ErrNotHeld", err)
	}
}

// A Lock waiting here for the Mutex's own hold ends with ErrClosed when the
// Mutex is closed (which also releases that hold).
func TestCloseEndsALocalWait(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m, err := c.NewMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Lock(context.Background()) }()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, latchkey.ErrClosed) {
			t.Fatalf("the waiting Lock = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the local wait within 10 s")
	}
	if owner, err := lockOwner(redisURL, name); err != nil || owner != "" {
		t.Fatalf("after Close the lock is held by %q (%v)", owner, err)
	}
}

// Err tells a loss from an ending. Before it, Lost closed on every ending and
// nothing else said which, so the chaos checker's Go worker logged a loss
// at every Unlock: a Go binding whose Unlock returned nil after a lost lease
// passed a chaos run (22 overlaps, none counted silent).
func TestErrTellsALossFromAnEnding(t *testing.T) {
	c := openClient(t)
	admin := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(600*time.Millisecond))

	// Unlocked: an ending, not a loss.
	h, err := m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Err(); err != nil {
		t.Fatalf("Err() of a live hold = %v, want nil", err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Lost after Unlock", h.Lost())
	if err := h.Err(); !errors.Is(err, latchkey.ErrNotHeld) || errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Err() after Unlock = %v, want ErrNotHeld and not ErrLost", err)
	}

	// Its key deleted: the renewal reports a loss, and Err keeps saying so
	// after the Unlock that follows.
	h, err = m.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if deleted, err := admin.ForceUnlock(name); err != nil || !deleted {
		t.Fatalf("ForceUnlock = %v, %v", deleted, err)
	}
	waitClosed(t, "Lost after the key was deleted", h.Lost())
	if err := h.Err(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Err() after the key was deleted = %v, want ErrLost", err)
	}
	if err := h.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Unlock() after the loss = %v, want ErrNotHeld", err)
	}
	if err := h.Err(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Err() after the loss and an Unlock = %v, want ErrLost", err)
	}
}
