package latchkey_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"latchkey"
)

func newSemaphore(t testing.TB, c *latchkey.Client, name string, size uint32, opts ...latchkey.MutexOption) *latchkey.Semaphore {
	t.Helper()
	s, err := c.NewSemaphore(name, size, opts...)
	if err != nil {
		t.Fatalf("NewSemaphore(%q, %d): %v", name, size, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func available(t *testing.T, s *latchkey.Semaphore) uint32 {
	t.Helper()
	n, err := s.Available()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// semaphoreWaiters is how many connections listen on the release channel
// of the semaphore name (a waiting Acquire subscribes before it parks).
func semaphoreWaiters(name string) int64 {
	v, err := redisDo(redisURL, "PUBSUB", "NUMSUB", "latchkey:sem:{"+name+"}:ch")
	if err != nil {
		return 0
	}
	items, _ := v.([]any)
	if len(items) != 2 {
		return 0
	}
	n, _ := items[1].(int64)
	return n
}

// semaphoreHolds is the tokens in the semaphore's lease set, the key Rust,
// C and Python use too.
func semaphoreHolds(t *testing.T, name string) []string {
	t.Helper()
	v, err := redisDo(redisURL, "ZRANGE", "latchkey:sem:{"+name+"}", "0", "-1")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, item := range v.([]any) {
		out = append(out, item.(string))
	}
	return out
}

// Goroutines, each with its own client, take one or two permits of a
// semaphore of three over and over: the permits held at once, counted by
// the holders, never exceed three.
func TestSemaphoreNeverMoreHeldThanItsSize(t *testing.T) {
	name := uniqueName(t)
	var mu sync.Mutex
	inUse, most := uint32(0), uint32(0)
	tokens := map[uint64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		s := newSemaphore(t, openClient(t), name, 3)
		permits := uint32(1 + i%2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 15 {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				h, err := s.Acquire(ctx, permits)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				inUse += permits
				most = max(most, inUse)
				tokens[h.FencingToken()] = true
				mu.Unlock()
				runtime.Gosched() // let another goroutine in while held
				mu.Lock()
				inUse -= permits
				mu.Unlock()
				if err := h.Unlock(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if most > 3 || most < 2 {
		t.Fatalf("at most %d permits were held at once; want 2 or 3 of 3", most)
	}
	if len(tokens) != 6*15 {
		t.Fatalf("%d distinct fencing tokens for %d holds", len(tokens), 6*15)
	}
}

func TestSemaphorePermitsAndAvailable(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	s := newSemaphore(t, c, name, 5)
	if s.Name() != name || s.Size() != 5 {
		t.Fatalf("Name, Size = %q, %d", s.Name(), s.Size())
	}
	three, err := s.Acquire(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(three.Token(), "3:") || three.Name() != name {
		t.Fatalf("token %q, name %q", three.Token(), three.Name())
	}
	if n := available(t, s); n != 2 {
		t.Fatalf("Available = %d, want 2", n)
	}
	if h, err := s.TryAcquire(3); h != nil || err != nil {
		t.Fatalf("TryAcquire(3) with 2 free = %v, %v; want nil, nil", h, err)
	}
	two, err := s.TryAcquire(2)
	if err != nil || two == nil {
		t.Fatalf("TryAcquire(2) = %v, %v", two, err)
	}
	if n := available(t, s); n != 0 {
		t.Fatalf("Available = %d, want 0", n)
	}
	if two.FencingToken() <= three.FencingToken() {
		t.Fatal("fencing tokens do not increase")
	}
	if err := three.Check(); err != nil || three.Remaining() <= 0 {
		t.Fatalf("Check, Remaining = %v, %v", err, three.Remaining())
	}
	if err := three.Extend(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := three.Unlock(); err != nil {
		t.Fatal(err)
	}
	if n := available(t, s); n != 3 {
		t.Fatalf("Available after releasing 3 = %d, want 3", n)
	}
	if err := two.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := two.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("second Unlock = %v, want ErrNotHeld", err)
	}
	if n := available(t, s); n != 5 {
		t.Fatalf("Available = %d, want 5", n)
	}
}

func TestSemaphoreWaiterWokenByRelease(t *testing.T) {
	name := uniqueName(t)
	s := newSemaphore(t, openClient(t), name, 1)
	held, err := s.Acquire(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	other := newSemaphore(t, openClient(t), name, 1)
	got := make(chan *latchkey.Hold, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		h, err := other.Acquire(ctx, 1)
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	waitUntil(t, "the waiter listens", func() bool { return semaphoreWaiters(name) > 0 })
	if err := held.Unlock(); err != nil { // 30 s left on its lease: only the release wakes the waiter
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h == nil {
			t.FailNow()
		}
		if h.FencingToken() <= held.FencingToken() {
			t.Fatal("the waiter's fencing token is not newer")
		}
		h.Unlock()
	case <-time.After(20 * time.Second):
		t.Fatal("the waiter was not woken by the release")
	}
}

// A cancelled context ends a wait with ErrCancelled (and context.Canceled),
// a deadline with ErrTimeout (and context.DeadlineExceeded); neither takes
// anything.
func TestSemaphoreAcquireEndsWithItsContext(t *testing.T) {
	name := uniqueName(t)
	s := newSemaphore(t, openClient(t), name, 2)
	held, err := s.Acquire(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Acquire(ctx, 1)
		done <- err
	}()
	waitUntil(t, "the waiter listens", func() bool { return semaphoreWaiters(name) > 0 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, latchkey.ErrCancelled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Acquire = %v", err)
		}
		if !strings.Contains(err.Error(), "semaphore '"+name+"'") {
			t.Fatalf("the message does not name the semaphore: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the context did not end the wait")
	}
	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if _, err := s.Acquire(short, 1); !errors.Is(err, latchkey.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past its deadline = %v", err)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if n := available(t, s); n != 2 {
		t.Fatalf("Available = %d: an ended wait took permits", n)
	}
}

func TestSemaphoreLostAfterForceReleaseAll(t *testing.T) {
	name := uniqueName(t)
	s := newSemaphore(t, openClient(t), name, 2, latchkey.WithTTL(600*time.Millisecond))
	h, err := s.Acquire(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	operator := newSemaphore(t, openClient(t), name, 2)
	if released, err := operator.ForceReleaseAll(); err != nil || !released {
		t.Fatalf("ForceReleaseAll = %v, %v", released, err)
	}
	waitClosed(t, "Lost after ForceReleaseAll", h.Lost())
	if err := h.Err(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Err = %v, want ErrLost", err)
	}
	if err := h.Check(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Check = %v, want ErrLost", err)
	}
	if err := h.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Unlock after the loss = %v, want ErrNotHeld", err)
	}
	if released, err := operator.ForceReleaseAll(); err != nil || released {
		t.Fatalf("second ForceReleaseAll = %v, %v; want false", released, err)
	}
}

func TestSemaphoreBadInput(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	for _, tc := range []struct {
		what string
		size uint32
		name string
		opts []latchkey.MutexOption
	}{
		{"size 0", 0, name, nil},
		{"size above MaxPermits", latchkey.MaxPermits + 1, name, nil},
		{"an empty name", 1, "", nil},
		{"WithReentrant", 2, name, []latchkey.MutexOption{latchkey.WithReentrant(true)}},
		{"WithFair", 2, name, []latchkey.MutexOption{latchkey.WithFair(true)}},
		{"a ttl below 10 ms", 2, name, []latchkey.MutexOption{latchkey.WithTTL(time.Millisecond)}},
	} {
		if s, err := c.NewSemaphore(tc.name, tc.size, tc.opts...); s != nil || !errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Errorf("NewSemaphore with %s = %v, %v; want ErrInvalidArgument", tc.what, s, err)
		}
	}
	s := newSemaphore(t, c, name, 2)
	for _, permits := range []uint32{0, 3} {
		if h, err := s.Acquire(context.Background(), permits); h != nil || !errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Errorf("Acquire(%d) of 2 = %v, %v; want ErrInvalidArgument", permits, h, err)
		}
		if h, err := s.TryAcquire(permits); h != nil || !errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Errorf("TryAcquire(%d) of 2 = %v, %v; want ErrInvalidArgument", permits, h, err)
		}
	}
	if n := available(t, s); n != 2 {
		t.Fatalf("Available = %d: bad input took permits", n)
	}
}

// A holder that stops renewing (WithAutoRenew(false), never unlocked)
// gives its permit back when its lease ends.
func TestSemaphoreDeadHoldersPermitComesBack(t *testing.T) {
	name := uniqueName(t)
	once := newSemaphore(t, openClient(t), name, 1, latchkey.WithTTL(400*time.Millisecond), latchkey.WithAutoRenew(false))
	if _, err := once.Acquire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	s := newSemaphore(t, openClient(t), name, 1)
	if h, err := s.TryAcquire(1); h != nil || err != nil {
		t.Fatalf("TryAcquire within the dead holder's lease = %v, %v", h, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := s.Acquire(ctx, 1)
	if err != nil {
		t.Fatalf("the permit did not come back after the lease: %v", err)
	}
	h.Unlock()
}

// Close ends the waits (ErrClosed), gives back the permits held through it
// (their Lost channels close, Err says ErrClosed) and refuses later calls.
func TestSemaphoreClose(t *testing.T) {
	name := uniqueName(t)
	s, err := openClient(t).NewSemaphore(name, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Acquire(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Acquire(context.Background(), 1)
		done <- err
	}()
	waitUntil(t, "the waiter listens", func() bool { return semaphoreWaiters(name) > 0 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, latchkey.ErrClosed) {
			t.Fatalf("a wait ended by Close = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the wait")
	}
	waitClosed(t, "Lost after Close", h.Lost())
	if !errors.Is(h.Err(), latchkey.ErrClosed) || !errors.Is(h.Unlock(), latchkey.ErrClosed) {
		t.Fatalf("Err, Unlock after Close = %v, %v", h.Err(), h.Unlock())
	}
	if _, err := s.Available(); !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("Available after Close = %v", err)
	}
	if h, err := s.TryAcquire(1); h != nil || !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("TryAcquire after Close = %v, %v", h, err)
	}
	if holds := semaphoreHolds(t, name); len(holds) != 0 {
		t.Fatalf("Close left %v in Redis", holds)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// The semaphore's key is the one Rust and C use (src/keys.rs), and a
// Python process (through the same C ABI) shares its permits with Go.
func TestSemaphoreSharedWithPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is missing")
	}
	lib, _ := filepath.Abs("../../target/release/liblatchkey.so")
	pkg, _ := filepath.Abs("../python")
	if _, err := os.Stat(lib); err != nil {
		t.Skipf("no %s: %v", lib, err)
	}
	name := uniqueName(t)
	script := fmt.Sprintf(`
import sys, latchkey
with latchkey.Client(%q) as client:
    with client.semaphore(%q, 2).acquire() as permit:
        print(permit.token, flush=True)
        sys.stdin.read()
print("released", flush=True)
`, redisURL, name)
	cmd := exec.Command(python, "-c", script)
	cmd.Env = append(os.Environ(), "LATCHKEY_LIBRARY="+lib, "PYTHONPATH="+pkg)
	killWithParent(cmd)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("the Python holder printed nothing: %s", stderr.String())
	}
	theirs := lines.Text()
	s := newSemaphore(t, openClient(t), name, 2)
	mine, err := s.Acquire(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	holds := semaphoreHolds(t, name)
	if len(holds) != 2 || !strings.Contains(strings.Join(holds, " "), theirs) || !strings.Contains(strings.Join(holds, " "), mine.Token()) {
		t.Fatalf("latchkey:sem:{%s} holds %v; want Python's %s and Go's %s", name, holds, theirs, mine.Token())
	}
	if h, err := s.TryAcquire(1); h != nil || err != nil {
		t.Fatalf("TryAcquire with Python and Go holding both permits = %v, %v", h, err)
	}
	got := make(chan *latchkey.Hold, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		h, err := s.Acquire(ctx, 1)
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	stdin.Close() // Python releases its permit: the Go waiter takes it
	if !lines.Scan() || lines.Text() != "released" {
		t.Fatalf("the Python holder did not release: %s", stderr.String())
	}
	if h := <-got; h != nil {
		h.Unlock()
	}
	mine.Unlock()
}

func ExampleClient_NewSemaphore() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// At most three workers, in any process or language, use the database.
	pool, err := client.NewSemaphore("example:db-connections", 3, latchkey.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	permit, err := pool.Acquire(ctx, 2) // two permits, one lease
	if err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrTimeout): too few came free in time
	}
	free, _ := pool.Available()
	fmt.Println("free:", free)
	none, _ := pool.TryAcquire(2)
	fmt.Println("two more:", none != nil)
	// ... work; permit.Lost() closes if the lease is lost ...
	if err := permit.Unlock(); err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrNotHeld): the lease was lost meanwhile
	}
	free, _ = pool.Available()
	fmt.Println("free:", free)
	// Output:
	// free: 1
	// two more: false
	// free: 3
}
