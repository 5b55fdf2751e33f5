package latchkey

/*
#include "helpers.h"
*/
import "C"

import (
	"context"
	"runtime"
	"unsafe"
)

// MaxLeaderValue is the largest value a candidate may announce, in bytes.
const MaxLeaderValue = 64 * 1024

// Election is a named leader election: candidates Campaign with a value (an
// address, an id), one at a time leads, and observers read the leader
// (Leader) and wait for the next change (Observe, Watch), woken by
// announcements and resignations (no polling) and by a dead leader's lease
// end. Make it with Client.NewElection; Close it when done.
//
// A leadership is a Hold, as Mutex.Acquire returns: its FencingToken is the
// term, higher for every new leadership (pass it to what the leader writes
// to); its lease is renewed while it leads (unless WithAutoRenew(false));
// its loss is reported as a lock's is (the Hold's Lost channel closes,
// Check says ErrLost: check before each piece of a leader's work); Unlock
// resigns, and the next candidate leads at once. A leader that dies is
// replaced once its lease ends (within its ttl).
//
// An Election and a Mutex or Semaphore of one name share no key. Elections
// are refused on Redlock clients (NewElection fails with
// ErrInvalidArgument): their masters cannot hold one announcement.
//
// An Election is safe for concurrent use. Its holds follow a Mutex's
// rules: a live leadership stays reachable from its Client until it ends
// (Unlock, loss, or Close of its Election or Client), so the garbage
// collector never resigns behind the program's back; an Election the
// program dropped without Close frees only what holds nothing.
type Election struct {
	st      *mutexState
	cleanup runtime.Cleanup
}

// Leader is who leads an election, as Election.Leader and Election.Observe
// report it. Leaders compare by Term.
type Leader struct {
	// Term is the fencing token of the leader's hold (Hold.FencingToken of
	// its leadership), higher for every new leadership.
	Term uint64
	// Value is what the leader announced.
	Value []byte
}

// NewElection makes an Election for the name (any UTF-8 string without NUL,
// up to 4096 bytes). The options are NewMutex's: WithTTL, WithAutoRenew,
// WithRenewEvery, WithRetryJitter and WithFair apply to each leader's lease
// (the ttl bounds how long a dead leader blocks its successor);
// WithReentrant(true) makes it fail with ErrInvalidArgument. Nothing is
// sent to Redis yet.
func (c *Client) NewElection(name string, opts ...MutexOption) (*Election, error) {
	_, cc, err := lockConfig(opts)
	if err != nil {
		return nil, err
	}
	st := newMutexState(c, name)
	err = c.makeState(st, "election name", func(p *C.latchkey_client, cname *C.char, cc C.lk_lock_config) (C.latchkey_status, *C.latchkey_error, C.uchar) {
		r := C.lk_election_new(p, cname, cc)
		st.elect = r.election
		return r.status, r.err, r.handle_taken
	}, cc)
	if err != nil {
		return nil, err
	}
	e := &Election{st: st}
	// A forgotten Close: free what holds nothing (as for a Mutex).
	e.cleanup = runtime.AddCleanup(e, func(st *mutexState) { st.abandon() }, st)
	return e, nil
}

// Name is the election's name.
func (e *Election) Name() string { return e.st.name }

// Campaign blocks until this candidate leads and has announced value (at
// most MaxLeaderValue bytes; nil for none), and returns the leadership,
// waiting (without polling) until then or until ctx ends, exactly as
// Mutex.Lock waits: a cancelled ctx returns promptly with an error matching
// both ErrCancelled and context.Canceled; a ctx deadline, both ErrTimeout
// and context.DeadlineExceeded (another led throughout);
// context.Background() waits for ever, or until the Election or its Client
// is closed (ErrClosed). ErrInvalidArgument for a value that is too long.
//
// The Hold's FencingToken is the term; Unlock resigns.
func (e *Election) Campaign(ctx context.Context, value []byte) (*Hold, error) {
	st := e.st
	var ptr *C.uint8_t
	if len(value) > 0 {
		// The library copies the value; cgo pins it during the call.
		ptr = (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(value)))
	}
	var r C.lk_acquired
	err := st.wait(ctx, func(timeout C.int64_t, cancel *C.latchkey_cancel) (C.latchkey_status, *C.latchkey_error) {
		r = C.lk_election_campaign(st.elect, ptr, C.size_t(len(value)), timeout, cancel)
		return r.status, r.err
	})
	if err != nil {
		return nil, err
	}
	return newHold(st, r)
}

// readLeader turns a C reading into a Leader (nil: nobody) and frees its
// buffer.
func readLeader(r C.lk_leader) (*Leader, error) {
	if r.status != C.LATCHKEY_OK {
		return nil, takeError(r.status, r.err)
	}
	defer C.latchkey_bytes_free(r.value, r.value_len)
	if !bool(r.found) {
		return nil, nil
	}
	value := []byte{}
	if r.value != nil {
		value = C.GoBytes(unsafe.Pointer(r.value), C.int(r.value_len))
	}
	return &Leader{Term: uint64(r.term), Value: value}, nil
}

// Leader is who leads now, or nil (and no error) if nobody does (a leader
// elected a moment ago that has not announced itself yet is not reported).
// One round trip.
func (e *Election) Leader() (*Leader, error) {
	st := e.st
	if !st.rc.acquire() {
		return nil, st.closedError()
	}
	st.tick.beforeBlockingCall()
	r := C.lk_election_leader(st.elect)
	st.rc.release()
	return readLeader(r)
}

// Observe blocks until the leader differs from known (nil: nobody; leaders
// compare by Term) and returns the new one (nil: nobody leads now). It is
// woken by an announcement or a resignation, and by a dead leader's lease
// end. It waits until ctx ends as Campaign does: a cancelled ctx matches
// ErrCancelled and context.Canceled, a deadline ErrTimeout and
// context.DeadlineExceeded (nothing changed), a Close ErrClosed.
//
//	known, err := election.Leader()
//	for err == nil {
//		known, err = election.Observe(ctx, known)
//		// route to known (nil: nobody leads)
//	}
func (e *Election) Observe(ctx context.Context, known *Leader) (*Leader, error) {
	return e.st.observe(ctx, known)
}

func (st *mutexState) observe(ctx context.Context, known *Leader) (*Leader, error) {
	var term C.uint64_t // 0: nobody
	if known != nil {
		term = C.uint64_t(known.Term)
	}
	var r C.lk_leader
	err := st.wait(ctx, func(timeout C.int64_t, cancel *C.latchkey_cancel) (C.latchkey_status, *C.latchkey_error) {
		r = C.lk_election_observe(st.elect, term, timeout, cancel)
		return r.status, r.err
	})
	if err != nil {
		return nil, err
	}
	if st.isClosed() {
		// The library checks for a close before it looks, not after: what
		// it saw may be the resignation the Close made. Closed it is, as
		// for a campaign won while the Election was being closed.
		_, _ = readLeader(r)
		return nil, st.closedError()
	}
	return readLeader(r)
}

// Watch sends who leads now, then every change (nil: nobody leads), on the
// returned channel, which is closed when ctx ends, the Election or its
// Client is closed, or an observation fails (Observe says why). The next
// change is looked for once the previous leader was received, so changes
// made in between arrive as their outcome (the leader then), never out of
// order. The goroutine behind it ends with the channel.
//
//	for leader := range election.Watch(ctx) {
//		// route to leader (nil: nobody leads)
//	}
func (e *Election) Watch(ctx context.Context) <-chan *Leader {
	st := e.st
	out := make(chan *Leader)
	go func() {
		defer close(out)
		if !st.rc.acquire() {
			return
		}
		st.tick.beforeBlockingCall()
		known, err := readLeader(C.lk_election_leader(st.elect))
		st.rc.release()
		for err == nil {
			select {
			case out <- known:
			case <-ctx.Done():
				return
			}
			known, err = st.observe(ctx, known)
		}
	}()
	return out
}

// Close interrupts the campaigns and observations in progress through this
// Election (they fail with ErrClosed), resigns every leadership still held
// through it (their Lost channels close) and frees it. The errors are
// those of the resignations. Closing twice is harmless.
func (e *Election) Close() error {
	e.cleanup.Stop()
	return e.st.close()
}
