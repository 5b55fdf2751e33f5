package latchkey_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"latchkey"
)

func TestVersion(t *testing.T) {
	t.Logf("library %s, header %s, linked %s", latchkey.Version(), latchkey.HeaderVersion, latchkey.LinkMode)
	if latchkey.Version() == "" || latchkey.Version() != latchkey.HeaderVersion {
		t.Fatalf("Version() = %q, header says %q", latchkey.Version(), latchkey.HeaderVersion)
	}
}

func TestLockUnlock(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name)
	if m.Name() != name {
		t.Fatalf("Name() = %q, want %q", m.Name(), name)
	}
	if m.FencingToken() != 0 || m.Token() != "" {
		t.Fatalf("unlocked mutex has tokens %d %q", m.FencingToken(), m.Token())
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := m.FencingToken()
	if first == 0 || len(m.Token()) != 32 {
		t.Fatalf("FencingToken() = %d, Token() = %q", first, m.Token())
	}
	if err := m.Check(); err != nil {
		t.Fatalf("Check() = %v", err)
	}
	if r := m.Remaining(); r <= 0 || r > 30*time.Second {
		t.Fatalf("Remaining() = %v", r)
	}
	locked, err := c.IsLocked(name)
	if err != nil || !locked {
		t.Fatalf("IsLocked = %v, %v", locked, err)
	}
	info, err := c.Inspect(name)
	if err != nil || info == nil {
		t.Fatalf("Inspect = %v, %v", info, err)
	}
	if info.Owner != m.Token() || info.FencingToken != first || info.TTL <= 0 || info.Reentrant || info.HoldCount != 1 {
		t.Fatalf("Inspect = %+v; mutex token %s fencing %d", *info, m.Token(), first)
	}
	if err := m.Unlock(); err != nil {
		t.Fatalf("Unlock() = %v", err)
	}
	if m.FencingToken() != 0 || m.Token() != "" {
		t.Fatalf("after Unlock: tokens %d %q", m.FencingToken(), m.Token())
	}
	if info, err := c.Inspect(name); err != nil || info != nil {
		t.Fatalf("Inspect after Unlock = %+v, %v", info, err)
	}
	if locked, err := c.IsLocked(name); err != nil || locked {
		t.Fatalf("IsLocked after Unlock = %v, %v", locked, err)
	}
	err = m.Unlock()
	if !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("second Unlock() = %v, want ErrNotHeld", err)
	}
	if err := m.Check(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Check() when unlocked = %v, want ErrNotHeld", err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.FencingToken() <= first {
		t.Fatalf("fencing token did not grow: %d then %d", first, m.FencingToken())
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestTryLock(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	a, b := newMutex(t, c, name), newMutex(t, c, name)
	if ok, err := a.TryLock(); !ok || err != nil {
		t.Fatalf("a.TryLock() = %v, %v", ok, err)
	}
	if ok, err := b.TryLock(); ok || err != nil {
		t.Fatalf("b.TryLock() while a holds = %v, %v; want false, nil", ok, err)
	}
	// A plain Mutex that holds the lock does not take it again.
	if ok, err := a.TryLock(); ok || err != nil {
		t.Fatalf("a.TryLock() while a holds = %v, %v; want false, nil", ok, err)
	}
	if b.FencingToken() != 0 {
		t.Fatalf("b has a fencing token without holding")
	}
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(); !ok || err != nil {
		t.Fatalf("b.TryLock() after a's Unlock = %v, %v", ok, err)
	}
	if err := b.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestReentrant(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithReentrant(true))
	other := newMutex(t, c, name, latchkey.WithReentrant(true))
	ctx := context.Background()
	if err := m.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.TryLock(); !ok || err != nil {
		t.Fatalf("nested TryLock = %v, %v", ok, err)
	}
	info, err := c.Inspect(name)
	if err != nil || info == nil || !info.Reentrant || info.HoldCount != 3 || info.Owner == m.Token() {
		t.Fatalf("Inspect = %+v, %v (token %s)", info, err, m.Token())
	}
	if ok, err := other.TryLock(); ok || err != nil {
		t.Fatalf("other handle TryLock = %v, %v; want false", ok, err)
	}
	for i := 0; i < 3; i++ {
		if err := m.Unlock(); err != nil {
			t.Fatalf("Unlock %d: %v", i, err)
		}
		if i < 2 {
			if locked, _ := c.IsLocked(name); !locked {
				t.Fatalf("released after %d of 3 unlocks", i+1)
			}
		}
	}
	if err := m.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("fourth Unlock = %v, want ErrNotHeld", err)
	}
	if ok, err := other.TryLock(); !ok || err != nil {
		t.Fatalf("other TryLock after full release = %v, %v", ok, err)
	}
}

func TestExtend(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(time.Second), latchkey.WithAutoRenew(false))
	if err := m.Extend(time.Minute); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Extend when unlocked = %v, want ErrNotHeld", err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Extend(time.Minute); err != nil {
		t.Fatal(err)
	}
	info, err := c.Inspect(name)
	if err != nil || info == nil || info.TTL < 30*time.Second {
		t.Fatalf("after Extend(1m): Inspect = %+v, %v", info, err)
	}
	for _, bad := range []time.Duration{0, -time.Second, time.Millisecond} {
		if err := m.Extend(bad); !errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Fatalf("Extend(%v) = %v, want ErrInvalidArgument", bad, err)
		}
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// Before: Extend(300ms) on a 30 s lease cut the hold's own lease to 300 ms
// while Redis kept 30 s: Check said ErrLost 300 ms later.
func TestAShorterExtendKeepsTheLease(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(30*time.Second))
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Extend(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if left := m.Remaining(); left < 20*time.Second {
		t.Fatalf("after Extend(300ms) on a 30 s lease: Remaining = %v", left)
	}
	time.Sleep(500 * time.Millisecond)
	if err := m.Check(); err != nil {
		t.Fatalf("Check past the shorter ttl = %v", err)
	}
	info, err := c.Inspect(name)
	if err != nil || info == nil || info.TTL < m.Remaining() {
		t.Fatalf("Redis keeps less than the hold counts on: %+v, %v (remaining %v)", info, err, m.Remaining())
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestExtendByAddsTime(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(10*time.Second), latchkey.WithAutoRenew(false))
	if err := m.ExtendBy(time.Second); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("ExtendBy when unlocked = %v, want ErrNotHeld", err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := m.Remaining()
	if err := m.ExtendBy(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	after := m.Remaining()
	if after <= before+4*time.Second || after > before+5*time.Second {
		t.Fatalf("ExtendBy(5s): remaining %v -> %v", before, after)
	}
	info, err := c.Inspect(name)
	if err != nil || info == nil || info.TTL < after {
		t.Fatalf("after ExtendBy: Inspect = %+v, %v (remaining %v)", info, err, after)
	}
	if err := m.ExtendBy(-time.Second); !errors.Is(err, latchkey.ErrInvalidArgument) {
		t.Fatalf("ExtendBy(-1s) = %v, want ErrInvalidArgument", err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	c := openClient(t)
	cases := []struct {
		what string
		err  func() error
	}{
		{"empty name", func() error { _, err := c.NewMutex(""); return err }},
		{"name with NUL", func() error { _, err := c.NewMutex("a\x00b"); return err }},
		{"name too long", func() error { _, err := c.NewMutex(strings.Repeat("x", 5000)); return err }},
		{"zero ttl", func() error { _, err := c.NewMutex("x", latchkey.WithTTL(0)); return err }},
		{"negative ttl", func() error { _, err := c.NewMutex("x", latchkey.WithTTL(-time.Second)); return err }},
		{"ttl below 10 ms", func() error { _, err := c.NewMutex("x", latchkey.WithTTL(5*time.Millisecond)); return err }},
		{"renewal not below ttl", func() error {
			_, err := c.NewMutex("x", latchkey.WithTTL(time.Second), latchkey.WithRenewEvery(2*time.Second))
			return err
		}},
		{"bad url", func() error { _, err := latchkey.Open("not a url"); return err }},
		{"url with NUL", func() error { _, err := latchkey.Open("redis://u:secret\x00@h"); return err }},
		{"prefix with brace", func() error { _, err := latchkey.Open(redisURL, latchkey.WithPrefix("a{b")); return err }},
		{"zero pool", func() error { _, err := latchkey.Open(redisURL, latchkey.WithPoolSize(0)); return err }},
		{"zero command timeout", func() error { _, err := latchkey.Open(redisURL, latchkey.WithCommandTimeout(0)); return err }},
		{"negative spin", func() error { _, err := latchkey.Open(redisURL, latchkey.WithSpin(-time.Microsecond)); return err }},
		{"spin above 10 ms", func() error {
			_, err := latchkey.Open(redisURL, latchkey.WithSpin(10*time.Millisecond+time.Nanosecond))
			return err
		}},
		{"redlock of two", func() error { _, err := latchkey.OpenRedlock([]string{redisURL, redisURL}); return err }},
		{"restart delay on one server", func() error {
			_, err := latchkey.Open(redisURL, latchkey.WithRedlockRestartDelay(0))
			return err
		}},
		{"negative restart delay", func() error {
			_, err := latchkey.OpenRedlock([]string{"redis://a", "redis://b", "redis://c"},
				latchkey.WithRedlockRestartDelay(-time.Second))
			return err
		}},
		{"cluster without seeds", func() error { _, err := latchkey.OpenCluster(nil); return err }},
		{"sentinel without name", func() error { _, err := latchkey.OpenSentinel([]string{redisURL}, ""); return err }},
		{"inspect empty name", func() error { _, err := c.Inspect(""); return err }},
		{"force unlock empty name", func() error { _, err := c.ForceUnlock(""); return err }},
		{"fenced write token 0", func() error { _, _, err := c.FencedWrite("r", 0, nil); return err }},
	}
	for _, tc := range cases {
		err := tc.err()
		if !errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", tc.what, err)
			continue
		}
		var e *latchkey.Error
		if !errors.As(err, &e) || e.Status != latchkey.StatusInvalidArgument || e.Message == "" {
			t.Errorf("%s: err = %#v, want an *Error with status and message", tc.what, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: message shows a password: %v", tc.what, err)
		}
		if errors.Is(err, latchkey.ErrTimeout) || errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v matches the wrong sentinels", tc.what, err)
		}
	}
}

func TestClientOptions(t *testing.T) {
	c := openClient(t, latchkey.WithPrefix("gotest"), latchkey.WithPoolSize(2),
		latchkey.WithConnectTimeout(time.Second), latchkey.WithCommandTimeout(time.Second))
	if p, err := c.Prefix(); err != nil || p != "gotest" {
		t.Fatalf("Prefix() = %q, %v", p, err)
	}
	plain := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name)
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Another prefix is another lock.
	if locked, err := plain.IsLocked(name); err != nil || locked {
		t.Fatalf("IsLocked under the default prefix = %v, %v", locked, err)
	}
	if locked, err := c.IsLocked(name); err != nil || !locked {
		t.Fatalf("IsLocked under the same prefix = %v, %v", locked, err)
	}
	// A single server has no per-master view.
	if states, err := c.InspectMasters(name); err != nil || len(states) != 0 {
		t.Fatalf("InspectMasters = %v, %v", states, err)
	}
}

// TestSpin: clients with spinning off, the longest spin limit and the
// default each take and release a lock; a limit above 10 ms is refused
// with a message naming the limit.
func TestSpin(t *testing.T) {
	for _, tc := range []struct {
		what string
		opts []latchkey.Option
	}{
		{"off", []latchkey.Option{latchkey.WithSpin(0)}},
		{"default", nil},
		{"10 ms", []latchkey.Option{latchkey.WithSpin(10 * time.Millisecond)}},
	} {
		c := openClient(t, tc.opts...)
		name := uniqueName(t)
		m, other := newMutex(t, c, name), newMutex(t, c, name)
		if err := m.Lock(context.Background()); err != nil {
			t.Fatalf("%s: Lock: %v", tc.what, err)
		}
		if ok, err := other.TryLock(); ok || err != nil {
			t.Fatalf("%s: TryLock while held = %v, %v", tc.what, ok, err)
		}
		if err := m.Unlock(); err != nil {
			t.Fatalf("%s: Unlock: %v", tc.what, err)
		}
		if ok, err := other.TryLock(); !ok || err != nil {
			t.Fatalf("%s: TryLock once free = %v, %v", tc.what, ok, err)
		}
		if err := other.Unlock(); err != nil {
			t.Fatalf("%s: Unlock: %v", tc.what, err)
		}
	}
	_, err := latchkey.Open(redisURL, latchkey.WithSpin(11*time.Millisecond))
	if !errors.Is(err, latchkey.ErrInvalidArgument) || !strings.Contains(err.Error(), "at most 10000") {
		t.Fatalf("Open with an 11 ms spin limit = %v, want ErrInvalidArgument naming the limit", err)
	}
}

func TestConnectionError(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dead := openClientAt(t, fmt.Sprintf("redis://127.0.0.1:%d", port), latchkey.WithConnectTimeout(500*time.Millisecond))
	m, err := dead.NewMutex(uniqueName(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Lock(context.Background())
	if !errors.Is(err, latchkey.ErrConnection) && !errors.Is(err, latchkey.ErrTimeout) {
		t.Fatalf("Lock against a closed port = %v, want ErrConnection", err)
	}
	if ok, err := m.TryLock(); ok || err == nil {
		t.Fatalf("TryLock against a closed port = %v, %v", ok, err)
	}
}

func TestClose(t *testing.T) {
	c, err := latchkey.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	admin := openClient(t)
	name, other := uniqueName(t), uniqueName(t)
	m, err := c.NewMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	spare, err := c.NewMutex(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	h, err := spare.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Client.Close releases what its Mutexes hold and closes them.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, n := range []string{name, other} {
		if locked, _ := admin.IsLocked(n); locked {
			t.Fatalf("Client.Close did not release %s", n)
		}
	}
	closed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, latchkey.ErrClosed) || errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Errorf("%s after Close = %v, want ErrClosed only", what, err)
		}
	}
	_, err = c.NewMutex("x")
	closed("NewMutex", err)
	_, err = c.Inspect("x")
	closed("Inspect", err)
	closed("Lock", m.Lock(context.Background()))
	_, err = m.TryLock()
	closed("TryLock", err)
	_, err = m.Acquire(context.Background())
	closed("Acquire", err)
	closed("Mutex.Unlock of a hold Close released", m.Unlock())
	closed("Hold.Unlock of a hold Close released", h.Unlock())
	closed("Hold.Check of a hold Close released", h.Check())
	if err := m.Close(); err != nil {
		t.Fatalf("Mutex.Close after Client.Close: %v", err)
	}

	// Mutex.Close releases what the Mutex holds, its Lock's and its
	// Acquire's holds alike, and leaves other Mutexes alone.
	c2 := openClient(t)
	m2, err := c2.NewMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	keep := newMutex(t, c2, other)
	if err := m2.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := keep.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	if locked, _ := admin.IsLocked(name); locked {
		t.Fatal("Mutex.Close did not release the lock")
	}
	if locked, _ := admin.IsLocked(other); !locked {
		t.Fatal("Mutex.Close released another Mutex's lock")
	}
	closed("Lock on a closed Mutex", m2.Lock(context.Background()))
	if err := m2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := keep.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// Closing a Mutex while another goroutine waits in Lock: the wait ends with
// ErrClosed, and nothing is left held.
func TestCloseWhileLocking(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	holder := newMutex(t, c, name)
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, err := c.NewMutex(name)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- m.Lock(context.Background()) }()
	waitUntil(t, "the waiter to subscribe", func() bool {
		n, err := subscribers(redisURL, name)
		return err == nil && n > 0
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, latchkey.ErrClosed) {
			t.Fatalf("Lock interrupted by Close = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Mutex.Close did not interrupt Lock within 10 s")
	}
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	if locked, _ := c.IsLocked(name); locked {
		t.Fatal("still locked")
	}
}

func TestFenced(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	resource := name + ":resource"
	m := newMutex(t, c, name)
	if _, _, found, err := c.FencedRead(resource); err != nil || found {
		t.Fatalf("FencedRead of nothing = %v, %v", found, err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := m.FencingToken()
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	current := m.FencingToken()
	written, highest, err := c.FencedWrite(resource, current, []byte("new"))
	if err != nil || !written || highest != current {
		t.Fatalf("FencedWrite(current) = %v, %d, %v", written, highest, err)
	}
	written, highest, err = c.FencedWrite(resource, old, []byte("stale"))
	if err != nil || written || highest != current {
		t.Fatalf("FencedWrite(old) = %v, %d, %v; want refused", written, highest, err)
	}
	value, token, found, err := c.FencedRead(resource)
	if err != nil || !found || token != current || !bytes.Equal(value, []byte("new")) {
		t.Fatalf("FencedRead = %q, %d, %v, %v", value, token, found, err)
	}
	if written, _, err := c.FencedWrite(resource, current, nil); err != nil || !written {
		t.Fatalf("FencedWrite(empty) = %v, %v", written, err)
	}
	if value, _, found, err := c.FencedRead(resource); err != nil || !found || len(value) != 0 {
		t.Fatalf("FencedRead(empty) = %q, %v, %v", value, found, err)
	}
}

func TestContextCancel(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	holder, waiter := newMutex(t, c, name), newMutex(t, c, name)
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- waiter.Lock(ctx) }()
	time.Sleep(150 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Lock returned while held: %v", err)
	default:
	}
	cancelled := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return within 5 s of the cancellation")
	}
	if d := time.Since(cancelled); d > time.Second {
		t.Fatalf("Lock returned %v after the cancellation", d)
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, latchkey.ErrCancelled) {
		t.Fatalf("err = %v, want context.Canceled and ErrCancelled", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, latchkey.ErrTimeout) {
		t.Fatalf("err = %v also matches the deadline errors", err)
	}
	if waiter.FencingToken() != 0 {
		t.Fatal("a cancelled Lock left a hold")
	}
	// Already cancelled: no attempt at all.
	start := time.Now()
	if err := waiter.Lock(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, latchkey.ErrCancelled) {
		t.Fatalf("Lock(cancelled ctx) = %v", err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Fatal("Lock(cancelled ctx) waited")
	}
	// The holder is unaffected, and the waiter can still lock later.
	if err := holder.Unlock(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	if err := waiter.Lock(ctx2); err != nil {
		t.Fatalf("Lock with a live cancellable ctx: %v", err)
	}
	if err := waiter.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestContextDeadline(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	holder, waiter := newMutex(t, c, name), newMutex(t, c, name)
	if err := holder.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	const wait = 300 * time.Millisecond
	for _, cancellable := range []bool{true, false} {
		var ctx context.Context
		var cancel context.CancelFunc
		if cancellable {
			ctx, cancel = context.WithTimeout(context.Background(), wait)
		} else {
			// A deadline without a Done channel: only the library's
			// timeout ends the wait.
			ctx, cancel = deadlineOnly{time.Now().Add(wait)}, func() {}
		}
		start := time.Now()
		err := waiter.Lock(ctx)
		elapsed := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, latchkey.ErrTimeout) {
			t.Fatalf("cancellable=%v: err = %v, want DeadlineExceeded and ErrTimeout", cancellable, err)
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, latchkey.ErrCancelled) {
			t.Fatalf("cancellable=%v: err = %v also matches the cancellation errors", cancellable, err)
		}
		if elapsed < wait-5*time.Millisecond || elapsed > wait+time.Second {
			t.Fatalf("cancellable=%v: Lock returned after %v, deadline %v", cancellable, elapsed, wait)
		}
	}
	// Already past the deadline.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := waiter.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, latchkey.ErrTimeout) {
		t.Fatalf("Lock(expired ctx) = %v", err)
	}
	// A deadline that is not reached: Lock succeeds once the holder lets go.
	go func() {
		time.Sleep(100 * time.Millisecond)
		holder.Unlock()
	}()
	ctx3, cancel3 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel3()
	if err := waiter.Lock(ctx3); err != nil {
		t.Fatalf("Lock within the deadline: %v", err)
	}
	if err := waiter.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// deadlineOnly is a context with a deadline but no Done channel.
type deadlineOnly struct{ d time.Time }

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.d, true }
func (c deadlineOnly) Done() <-chan struct{}       { return nil }
func (c deadlineOnly) Err() error                  { return nil }
func (c deadlineOnly) Value(any) any               { return nil }

func TestLost(t *testing.T) {
	c := openClient(t)
	admin := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(600*time.Millisecond), latchkey.WithAutoRenew(true))
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	lost := m.Lost()
	// Renewal (every 200 ms) keeps it past its ttl.
	time.Sleep(800 * time.Millisecond)
	select {
	case <-lost:
		t.Fatal("Lost closed while the lease was renewed")
	default:
	}
	if err := m.Check(); err != nil {
		t.Fatalf("Check() = %v", err)
	}
	if deleted, err := admin.ForceUnlock(name); err != nil || !deleted {
		t.Fatalf("ForceUnlock = %v, %v", deleted, err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("Lost not closed 5 s after ForceUnlock")
	}
	if m.Lost() != lost {
		t.Fatal("Lost() changed channel for the same hold")
	}
	if err := m.Check(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Check() after the loss = %v, want ErrLost", err)
	}
	if err := m.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Unlock() after the loss = %v, want ErrNotHeld", err)
	}
	if !isClosed(lost) {
		t.Fatal("the lost hold's channel is open")
	}
	// A new hold has a new, open channel.
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Lost():
		t.Fatal("the new hold's Lost channel is closed")
	default:
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// A failed Extend reports the loss too (no watchdog involved).
func TestLostByExtend(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithAutoRenew(false))
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ForceUnlock(name); err != nil {
		t.Fatal(err)
	}
	if err := m.Extend(time.Minute); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Extend after ForceUnlock = %v, want ErrNotHeld", err)
	}
	select {
	case <-m.Lost():
	default:
		t.Fatal("Lost not closed after a failed Extend")
	}
}

// Every method at once on one Mutex: the Lock/TryLock holders exclude each
// other, each sees its own hold (the one Redis has), every other call gives
// a result or error that its documentation allows, and nothing is left held.
func TestConcurrentMethods(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	m := newMutex(t, c, name, latchkey.WithTTL(time.Second))
	deadline := time.Now().Add(500 * time.Millisecond)
	var wg sync.WaitGroup
	var inside, acquired atomic.Int64
	errs := make(chan error, 100)
	report := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(format, args...):
		default:
		}
	}
	critical := func(how string) {
		acquired.Add(1)
		if !inside.CompareAndSwap(0, 1) {
			report("%s: two holders of one Mutex at once", how)
		}
		if owner, err := lockOwner(redisURL, name); err != nil || owner != m.Token() {
			report("%s: Redis owner %q (%v), Mutex token %q", how, owner, err, m.Token())
		}
		if err := m.Check(); err != nil {
			report("%s: Check() = %v while held", how, err)
		}
		inside.Store(0)
		if err := m.Unlock(); err != nil {
			report("%s: Unlock() = %v", how, err)
		}
	}
	notHeldOr := func(what string, err error) {
		if err != nil && !errors.Is(err, latchkey.ErrNotHeld) {
			report("%s = %v, want nil or ErrNotHeld", what, err)
		}
	}
	calls := []func(){
		func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if err := m.Lock(ctx); err == nil {
				critical("Lock")
			} else if !errors.Is(err, latchkey.ErrTimeout) {
				report("Lock = %v, want nil or ErrTimeout", err)
			}
		},
		func() {
			if ok, err := m.TryLock(); ok {
				critical("TryLock")
			} else if err != nil {
				report("TryLock = %v", err)
			}
		},
		func() { notHeldOr("Extend", m.Extend(time.Second)) },
		func() { notHeldOr("Check", m.Check()) },
		func() {
			if r := m.Remaining(); r < 0 || r > time.Second {
				report("Remaining() = %v", r)
			}
		},
		func() {
			if tok := m.Token(); tok != "" && len(tok) != 32 {
				report("Token() = %q", tok)
			}
			m.FencingToken()
			if m.Name() != name {
				report("Name() = %q", m.Name())
			}
		},
		func() {
			select {
			case <-m.Lost():
			default:
			}
		},
		func() {
			if info, err := c.Inspect(name); err != nil || (info != nil && len(info.Owner) != 32) {
				report("Inspect = %+v, %v", info, err)
			}
		},
	}
	for _, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				call()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if acquired.Load() == 0 {
		t.Error("no Lock or TryLock succeeded")
	}
	if err := m.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Errorf("Unlock() after all = %v, want ErrNotHeld", err)
	}
	if locked, err := c.IsLocked(name); err != nil || locked {
		t.Errorf("IsLocked after all = %v, %v", locked, err)
	}
}

// Every cgo handle given to the library comes back through user_free, and
// the garbage collector frees only what holds nothing: a dropped Mutex that
// holds nothing gives its handle back, a dropped Mutex whose lock is held
// keeps it until the hold ends (here: lost), and then gives it back too.
func TestHandlesAndCleanup(t *testing.T) {
	c := openClient(t)
	admin := openClient(t)
	before := settledHandles()
	for i := 0; i < 20; i++ {
		m, err := c.NewMutex(uniqueName(t), latchkey.WithTTL(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := m.Lock(context.Background()); err != nil {
				t.Fatal(err)
			}
			if i%4 == 0 {
				m.Unlock()
			}
		}
		m.Close()
	}
	waitUntil(t, "every handle to come back", func() bool { return latchkey.LiveHandles() == before })

	// Dropped without Close, holding nothing.
	func() {
		m, err := c.NewMutex(uniqueName(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := m.Unlock(); err != nil {
			t.Fatal(err)
		}
	}()
	waitUntil(t, "the handle of a collected Mutex that held nothing to come back", func() bool {
		runtime.GC()
		return latchkey.LiveHandles() == before
	})

	// Dropped without Close while holding: the lock stays held.
	name := uniqueName(t)
	lost := func() <-chan struct{} {
		m, err := c.NewMutex(name, latchkey.WithTTL(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
		return m.Lost()
	}()
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	if locked, _ := admin.IsLocked(name); !locked {
		t.Fatal("the garbage collector released a held lock")
	}
	if latchkey.LiveHandles() == before {
		t.Fatal("the handle of a held lock came back")
	}
	if _, err := admin.ForceUnlock(name); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Lost after ForceUnlock", lost)
	waitUntil(t, "the handle of the lost hold to come back", func() bool {
		runtime.GC()
		return latchkey.LiveHandles() == before
	})
}

// settledHandles is LiveHandles once the Mutexes that earlier tests dropped
// have been collected (the count stopped changing across collections).
func settledHandles() int64 {
	n := latchkey.LiveHandles()
	for same := 0; same < 5; {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if m := latchkey.LiveHandles(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The system libraries in the cgo directives of link_static.go (and of
// link_chaos.go, the chaos self-test's build) are the ones rustc reports for
// the static library (make target/native-static-libs.txt).
func TestNativeStaticLibs(t *testing.T) {
	want, err := os.ReadFile("../../target/native-static-libs.txt")
	if err != nil {
		t.Fatalf("no target/native-static-libs.txt: run make target/native-static-libs.txt (make go-test does): %v", err)
	}
	for _, file := range []string{"link_static.go", "link_chaos.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var directive string
		for _, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(line, "#cgo LDFLAGS:") {
				directive = line
			}
		}
		have := map[string]bool{}
		for _, f := range strings.Fields(directive) {
			have[f] = true
		}
		for _, lib := range strings.Fields(string(want)) {
			if !have[lib] {
				t.Errorf("rustc lists %s for liblatchkey.a, %s does not link it: %s", lib, file, directive)
			}
		}
	}
}

// A holder that died leaves its key until its lease runs out; nobody
// releases it. Fair Mutexes queued one after another get the lock in
// arrival order (an ordinary lock lets the first to look again take it:
// tests/fair.rs); fair and reentrant together are refused.
func TestFairArrivalOrder(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	if _, err := redisDo(redisURL, "SET", "latchkey:{"+name+"}", "a-holder-that-died", "PX", "2000"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var taken []int
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		m := newMutex(t, c, name, latchkey.WithFair(true), latchkey.WithRetryJitter(50*time.Millisecond))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := m.Lock(ctx); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			mu.Lock()
			taken = append(taken, i)
			mu.Unlock()
			if err := m.Unlock(); err != nil {
				t.Errorf("waiter %d Unlock: %v", i, err)
			}
		}(i)
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := redisDo(redisURL, "ZCARD", "latchkey:{"+name+"}:qa")
			if err == nil && n.(int64) > int64(i) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d never queued (%v, %v)", i, n, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	wg.Wait()
	if fmt.Sprint(taken) != "[0 1 2 3]" {
		t.Fatalf("fair Mutexes got the lock in the order %v, not their arrival order", taken)
	}
	if _, err := c.NewMutex(name, latchkey.WithFair(true), latchkey.WithReentrant(true)); !errors.Is(err, latchkey.ErrInvalidArgument) {
		t.Fatalf("fair and reentrant: %v, want ErrInvalidArgument", err)
	}
}
