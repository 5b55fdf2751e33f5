package latchkey_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"latchkey"
)

func newElection(t testing.TB, c *latchkey.Client, name string, opts ...latchkey.MutexOption) *latchkey.Election {
	t.Helper()
	e, err := c.NewElection(name, opts...)
	if err != nil {
		t.Fatalf("NewElection(%q): %v", name, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func leaderOf(t *testing.T, e *latchkey.Election) *latchkey.Leader {
	t.Helper()
	l, err := e.Leader()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// electionWaiters is how many connections listen on the election's
// channel (a waiting Campaign or Observe subscribes before it parks; the
// waits of one client share its connection).
func electionWaiters(name string) int64 {
	v, err := redisDo(redisURL, "PUBSUB", "NUMSUB", "latchkey:elect:{"+name+"}:ch")
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

// Candidates, each with its own client, campaign, lead briefly and resign,
// over and over: never two leaders at once by their own count, and terms
// increase in the order leaders were elected.
func TestElectionOneLeaderAtATime(t *testing.T) {
	name := uniqueName(t)
	var leading atomic.Int32
	var mu sync.Mutex
	var terms []uint64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		e := newElection(t, openClient(t), name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				h, err := e.Campaign(ctx, []byte(fmt.Sprintf("node-%d", i)))
				cancel()
				if err != nil {
					errs <- err
					return
				}
				if leading.Add(1) != 1 {
					errs <- errors.New("two leaders at once")
				}
				mu.Lock()
				terms = append(terms, h.FencingToken())
				mu.Unlock()
				runtime.Gosched()
				leading.Add(-1)
				if err := h.Check(); err != nil {
					errs <- err
				}
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
	if len(terms) != 40 {
		t.Fatalf("%d leaderships, want 40", len(terms))
	}
	for i := 1; i < len(terms); i++ {
		if terms[i] <= terms[i-1] {
			t.Fatalf("terms did not increase: %v", terms)
		}
	}
}

func TestElectionLeaderValueAndTimeout(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	e := newElection(t, c, name)
	if e.Name() != name || leaderOf(t, e) != nil {
		t.Fatalf("Name, Leader = %q, %v", e.Name(), leaderOf(t, e))
	}
	h, err := e.Campaign(context.Background(), []byte("10.0.0.1:80"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Name() != name || len(h.Token()) != 32 || h.FencingToken() == 0 || h.Remaining() <= 0 {
		t.Fatalf("Name %q, Token %q, FencingToken %d, Remaining %v", h.Name(), h.Token(), h.FencingToken(), h.Remaining())
	}
	if l := leaderOf(t, e); l == nil || l.Term != h.FencingToken() || string(l.Value) != "10.0.0.1:80" {
		t.Fatalf("Leader = %+v, want term %d", l, h.FencingToken())
	}
	other := newElection(t, c, name)
	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if _, err := other.Campaign(short, []byte("x")); !errors.Is(err, latchkey.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Campaign while another leads = %v", err)
	}
	if err := h.Extend(time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(); err != nil { // resigns
		t.Fatal(err)
	}
	if l := leaderOf(t, e); l != nil {
		t.Fatalf("Leader after the resignation = %+v", l)
	}
	if err := h.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("second Unlock = %v, want ErrNotHeld", err)
	}
	next, err := other.Campaign(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Unlock()
	if l := leaderOf(t, e); next.FencingToken() <= h.FencingToken() || l == nil || len(l.Value) != 0 || l.Value == nil {
		t.Fatalf("next term %d after %d, Leader %+v", next.FencingToken(), h.FencingToken(), l)
	}
}

// An observer is woken by a resignation and by the next leader; Watch
// sends the same changes.
func TestElectionObserveAndWatch(t *testing.T) {
	name := uniqueName(t)
	e := newElection(t, openClient(t), name)
	first, err := e.Campaign(context.Background(), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	known := leaderOf(t, e)
	watched := newElection(t, openClient(t), name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch := watched.Watch(ctx)
	if l := <-watch; l == nil || l.Term != known.Term {
		t.Fatalf("Watch's first leader = %+v, want %+v", l, known)
	}
	seen := make(chan []*latchkey.Leader, 1)
	go func() {
		var got []*latchkey.Leader
		now := known
		// Nobody, then the next leader; or the next leader at once if
		// its campaign was faster than the look after the resignation.
		for now == nil || now.Term == known.Term {
			var err error
			if now, err = watched.Observe(ctx, now); err != nil {
				t.Error(err)
				break
			}
			got = append(got, now)
		}
		seen <- got
	}()
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	second, err := e.Campaign(ctx, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Unlock()
	got := <-seen
	if last := got[len(got)-1]; last == nil || last.Term != second.FencingToken() || string(last.Value) != "b" {
		t.Fatalf("observed %+v, want the second leader last", got)
	}
	if len(got) > 2 || (len(got) == 2 && got[0] != nil) {
		t.Fatalf("observed %+v, want [nil, second] or [second]", got)
	}
	for l := range watch {
		if l != nil && l.Term == second.FencingToken() {
			break // Watch saw it too (maybe after nobody)
		}
		if l != nil {
			t.Fatalf("Watch sent %+v", l)
		}
	}
	// Nothing changes: Observe waits until its deadline.
	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if _, err := e.Observe(short, got[len(got)-1]); !errors.Is(err, latchkey.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Observe with nothing changing = %v", err)
	}
	// An older leader is not the current one: Observe returns at once.
	if l, err := e.Observe(context.Background(), known); err != nil || l == nil || l.Term != second.FencingToken() {
		t.Fatalf("Observe(older) = %+v, %v", l, err)
	}
}

// A cancelled context ends a campaign and an observation with ErrCancelled
// (and context.Canceled), naming the election.
func TestElectionWaitsEndWithTheirContext(t *testing.T) {
	name := uniqueName(t)
	e := newElection(t, openClient(t), name)
	held, err := e.Campaign(context.Background(), []byte("held"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() {
		_, err := e.Campaign(ctx, []byte("waiter"))
		done <- err
	}()
	go func() {
		_, err := e.Observe(ctx, leaderOf(t, e))
		done <- err
	}()
	// One client listens on one connection; a wait that starts after the
	// cancel (or Close) ends at once all the same.
	waitUntil(t, "a wait listens", func() bool { return electionWaiters(name) > 0 })
	cancel()
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, latchkey.ErrCancelled) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "election '"+name+"'") {
				t.Fatalf("a cancelled wait = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("cancelling the context did not end the wait")
		}
	}
	if l := leaderOf(t, e); l == nil || l.Term != held.FencingToken() {
		t.Fatalf("Leader = %+v", l)
	}
}

// A leadership whose key is deleted is reported lost; nobody leads then.
func TestElectionLostAfterItsKeyIsDeleted(t *testing.T) {
	name := uniqueName(t)
	e := newElection(t, openClient(t), name, latchkey.WithTTL(900*time.Millisecond))
	h, err := e.Campaign(context.Background(), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := redisDo(redisURL, "DEL", "latchkey:elect:{"+name+"}"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "Lost after the key was deleted", h.Lost())
	if err := h.Check(); !errors.Is(err, latchkey.ErrLost) {
		t.Fatalf("Check = %v, want ErrLost", err)
	}
	if l := leaderOf(t, e); l != nil {
		t.Fatalf("Leader after the loss = %+v", l)
	}
	if err := h.Unlock(); !errors.Is(err, latchkey.ErrNotHeld) {
		t.Fatalf("Unlock after the loss = %v, want ErrNotHeld", err)
	}
}

// A leader that stops renewing (WithAutoRenew(false), never resigning) is
// replaced once its lease ends; its observer sees it go.
func TestElectionDeadLeaderIsReplaced(t *testing.T) {
	name := uniqueName(t)
	mortal := newElection(t, openClient(t), name, latchkey.WithTTL(500*time.Millisecond), latchkey.WithAutoRenew(false))
	dead, err := mortal.Campaign(context.Background(), []byte("old"))
	if err != nil {
		t.Fatal(err)
	}
	e := newElection(t, openClient(t), name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if l, err := e.Observe(ctx, &latchkey.Leader{Term: dead.FencingToken()}); err != nil || l != nil {
		t.Fatalf("Observe past the dead leader's lease = %+v, %v; want nobody", l, err)
	}
	h, err := e.Campaign(ctx, []byte("new"))
	if err != nil {
		t.Fatalf("not elected after the dead leader's lease: %v", err)
	}
	defer h.Unlock()
	if h.FencingToken() <= dead.FencingToken() {
		t.Fatal("the term did not increase")
	}
}

func TestElectionBadInput(t *testing.T) {
	c := openClient(t)
	name := uniqueName(t)
	for _, tc := range []struct {
		what string
		name string
		opts []latchkey.MutexOption
	}{
		{"an empty name", "", nil},
		{"WithReentrant", name, []latchkey.MutexOption{latchkey.WithReentrant(true)}},
		{"a ttl below 10 ms", name, []latchkey.MutexOption{latchkey.WithTTL(time.Millisecond)}},
		{"a NUL in the name", "a\x00b", nil},
	} {
		if e, err := c.NewElection(tc.name, tc.opts...); e != nil || !errors.Is(err, latchkey.ErrInvalidArgument) {
			t.Errorf("NewElection with %s = %v, %v; want ErrInvalidArgument", tc.what, e, err)
		}
	}
	e := newElection(t, c, name)
	if h, err := e.Campaign(context.Background(), make([]byte, latchkey.MaxLeaderValue+1)); h != nil || !errors.Is(err, latchkey.ErrInvalidArgument) {
		t.Fatalf("Campaign with a value too long = %v, %v", h, err)
	}
	if l := leaderOf(t, e); l != nil {
		t.Fatalf("bad input elected %+v", l)
	}
	value := bytes.Repeat([]byte{0, 1, 0xff}, latchkey.MaxLeaderValue/3)
	h, err := e.Campaign(context.Background(), value)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	if l := leaderOf(t, e); l == nil || !bytes.Equal(l.Value, value) {
		t.Fatal("the largest value was not read back whole")
	}
}

// Close ends the waits (ErrClosed), resigns the leaderships held through it
// (their Lost channels close, Err says ErrClosed) and refuses later calls.
func TestElectionClose(t *testing.T) {
	name := uniqueName(t)
	e, err := openClient(t).NewElection(name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := e.Campaign(context.Background(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	known := leaderOf(t, e)
	done := make(chan error, 2)
	go func() {
		_, err := e.Campaign(context.Background(), []byte("y"))
		done <- err
	}()
	go func() {
		_, err := e.Observe(context.Background(), known)
		done <- err
	}()
	// One client listens on one connection; a wait that starts after the
	// cancel (or Close) ends at once all the same.
	waitUntil(t, "a wait listens", func() bool { return electionWaiters(name) > 0 })
	observer := newElection(t, openClient(t), name)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, latchkey.ErrClosed) {
				t.Fatalf("a wait ended by Close = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not end the wait")
		}
	}
	waitClosed(t, "Lost after Close", h.Lost())
	if !errors.Is(h.Err(), latchkey.ErrClosed) || !errors.Is(h.Unlock(), latchkey.ErrClosed) {
		t.Fatalf("Err, Unlock after Close = %v, %v", h.Err(), h.Unlock())
	}
	if _, err := e.Leader(); !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("Leader after Close = %v", err)
	}
	if _, err := e.Campaign(context.Background(), nil); !errors.Is(err, latchkey.ErrClosed) {
		t.Fatalf("Campaign after Close = %v", err)
	}
	if _, ok := <-e.Watch(context.Background()); ok {
		t.Fatal("Watch after Close sent a leader")
	}
	if l := leaderOf(t, observer); l != nil {
		t.Fatalf("Close left %+v leading", l)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// A leadership the program dropped, with its Election, stays until the
// Client is closed: the garbage collector never resigns.
func TestElectionLeadershipSurvivesGC(t *testing.T) {
	name := uniqueName(t)
	c, err := latchkey.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	func() {
		e, err := c.NewElection(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Campaign(context.Background(), []byte("kept")); err != nil {
			t.Fatal(err)
		}
	}()
	runtime.GC()
	runtime.GC()
	observer := newElection(t, openClient(t), name)
	known := leaderOf(t, observer)
	if known == nil || string(known.Value) != "kept" {
		t.Fatalf("after GC the leader is %+v", known)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if l, err := observer.Observe(ctx, known); err != nil || l != nil {
		t.Fatalf("after the client's Close: %+v, %v; want nobody", l, err)
	}
}

// Go and a Python process (through the same C ABI) campaign in one
// election: each sees the other as leader, and each is woken by the
// other's resignation.
func TestElectionSharedWithPython(t *testing.T) {
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
	// Python leads first and says its term; when its stdin closes it
	// resigns, then observes until Go leads and prints Go's value.
	script := fmt.Sprintf(`
import sys, latchkey
with latchkey.Client(%q) as client:
    election = client.election(%q)
    with election.campaign(b"python") as leadership:
        print(leadership.term, flush=True)
        sys.stdin.read()
    known = None
    while known is None or known.value != b"go":
        known = election.observe(known, timeout=30)
    print(known.term, known.value.decode(), flush=True)
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
		t.Fatalf("the Python candidate printed nothing: %s", stderr.String())
	}
	theirs, _ := strconv.ParseUint(lines.Text(), 10, 64)
	e := newElection(t, openClient(t), name)
	l := leaderOf(t, e)
	if l == nil || l.Term != theirs || string(l.Value) != "python" {
		t.Fatalf("Go sees %+v; want Python's term %d", l, theirs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stdin.Close() // Python resigns: Go's campaign wins
	h, err := e.Campaign(ctx, []byte("go"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	if h.FencingToken() <= theirs {
		t.Fatal("Go's term is not above Python's")
	}
	if !lines.Scan() || lines.Text() != fmt.Sprintf("%d go", h.FencingToken()) {
		t.Fatalf("Python saw %q; want Go's term %d: %s", lines.Text(), h.FencingToken(), stderr.String())
	}
}

func ExampleClient_NewElection() {
	client, err := latchkey.Open(url())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	election, err := client.NewElection("example:scheduler", latchkey.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer election.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leadership, err := election.Campaign(ctx, []byte("host-a:8080"))
	if err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrTimeout): another led throughout
	}
	leader, _ := election.Leader()
	fmt.Printf("leader: %s, term is the fencing token: %v\n", leader.Value, leader.Term == leadership.FencingToken())
	// ... lead; check before each piece of work, or watch leadership.Lost() ...
	if err := leadership.Check(); err != nil {
		log.Fatal(err) // errors.Is(err, latchkey.ErrLost): stop leading
	}
	if err := leadership.Unlock(); err != nil { // resigns
		log.Fatal(err)
	}
	leader, _ = election.Leader()
	fmt.Println("after resigning:", leader)
	// Output:
	// leader: host-a:8080, term is the fencing token: true
	// after resigning: <nil>
}
