package latchkey

// Multi-locks: several locks taken all together or not at all (the
// library's latchkey_multi_lock_* and latchkey_multi_guard_*).
//
// A MultiLock's lifecycle is a Mutex's: its state is a mutexState (the C
// handle's refcount, the waits Close and Client.Close interrupt, Close
// through the client's list of Mutexes) whose label names the multi-lock,
// and Acquire waits through mutexState.wait exactly as Mutex.Lock does. Its
// holds are MultiHolds, recorded in multiHolds (which keeps every live one
// reachable, as a client's registry keeps its Holds) until they end:
// Unlock, loss of any lease, or Close of the MultiLock or the Client.

/*
#include "helpers.h"

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	latchkey_multi_lock *multi;
	unsigned char handle_taken; // as lk_lock_made's
} lk_multi_made;

// A multi-lock whose locks have the options of cfg: one cgo call.
static inline lk_multi_made lk_multi_lock_new(const latchkey_client *client, const char *const *names, size_t count,
                                              lk_lock_config cfg) {
	lk_multi_made r = {0};
	latchkey_lock_options *options = lk_options_make(cfg, &r.status, &r.err, &r.handle_taken);
	if (options == NULL) return r;
	r.status = latchkey_multi_lock_new(client, names, count, options, &r.multi, &r.err);
	latchkey_lock_options_free(options);
	return r;
}

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	latchkey_multi_guard *guard;
} lk_multi_acquired;

static inline lk_multi_acquired lk_multi_acquire(const latchkey_multi_lock *multi, int64_t timeout_ms,
                                                 const latchkey_cancel *cancel) {
	lk_multi_acquired r = {0};
	r.status = latchkey_multi_lock_acquire(multi, timeout_ms, cancel, &r.guard, &r.err);
	return r;
}

// One attempt per lock; "one is held" (LATCHKEY_TIMEOUT) needs no message.
static inline lk_multi_acquired lk_multi_try_acquire(const latchkey_multi_lock *multi) {
	lk_multi_acquired r = {0};
	r.status = latchkey_multi_lock_try_acquire(multi, &r.guard, &r.err);
	if (r.status == LATCHKEY_TIMEOUT) {
		latchkey_error_free(r.err);
		r.err = NULL;
	}
	return r;
}

// The guard's fencing tokens, in order, into out (at most cap); how many
// locks it holds.
static inline size_t lk_multi_tokens(const latchkey_multi_guard *guard, uint64_t *out, size_t cap) {
	size_t n = 0;
	if (latchkey_multi_guard_count(guard, &n, NULL) != LATCHKEY_OK) return 0;
	for (size_t i = 0; i < n && i < cap; i++) {
		if (latchkey_multi_guard_fencing_token(guard, i, &out[i], NULL) != LATCHKEY_OK) out[i] = 0;
	}
	return n;
}

static inline lk_result lk_multi_check(const latchkey_multi_guard *guard) {
	lk_result r = {0};
	r.status = latchkey_multi_guard_check(guard, &r.err);
	return r;
}

// Release, then free the guard: one cgo call.
static inline lk_result lk_multi_release_free(latchkey_multi_guard *guard) {
	lk_result r = {0};
	r.status = latchkey_multi_guard_release(guard, &r.err);
	latchkey_multi_guard_free(guard);
	return r;
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// MaxMultiLockNames is the most locks one MultiLock may take.
const MaxMultiLockNames = 1024

// MultiLock is several named locks, taken all together or not at all. Make
// it with Client.NewMultiLock; Close it when done.
//
// The locks are ordinary locks: a Mutex of the same name, in any process or
// language, excludes the holder and is excluded by it. They are taken one
// after the other in the order of their names' bytes (Names), whatever
// order they were given in, so multi-locks of overlapping sets never
// deadlock; an Acquire that cannot take every lock gives back those it took
// and holds none. Each acquisition returns a MultiHold; losing any one of
// its leases loses the whole.
//
// A MultiLock is safe for concurrent use. Its holds follow a Mutex's rules:
// a live MultiHold stays reachable until it ends (Unlock, loss, or Close of
// its MultiLock or Client), so the garbage collector never releases a lock
// behind the program's back; a MultiLock the program dropped without Close
// frees only what holds nothing.
type MultiLock struct {
	ms      *multiState
	cleanup runtime.Cleanup
}

// multiState is everything a MultiLock owns. The lost-lease callback
// reaches it through a cgo.Handle, so it must not point back at the
// MultiLock.
type multiState struct {
	st    *mutexState // the lifecycle (see the file's comment)
	multi *C.latchkey_multi_lock
	names []string // sorted, each once
}

// NewMultiLock makes a MultiLock over names (1 to MaxMultiLockNames lock
// names as given; a duplicate counts toward the limit but is taken once).
// The options are NewMutex's and apply to every lock; WithReentrant(true)
// makes it fail with ErrInvalidArgument (a nested multi-lock over
// overlapping names would deadlock with itself), as do no names, an empty
// name or too many. Nothing is sent to Redis yet.
func (c *Client) NewMultiLock(names []string, opts ...MutexOption) (*MultiLock, error) {
	_, cc, err := lockConfig(opts)
	if err != nil {
		return nil, err
	}
	cnames := make([]*C.char, 0, len(names))
	defer func() {
		for _, p := range cnames {
			freeCString(p)
		}
	}()
	for i, name := range names {
		p, err := cString(fmt.Sprintf("names[%d]", i), name)
		if err != nil {
			return nil, err
		}
		cnames = append(cnames, p)
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted) // by bytes, as the library orders them
	sorted = slices.Compact(sorted)
	quoted := make([]string, len(sorted))
	for i, n := range sorted {
		quoted[i] = "'" + n + "'"
	}
	label := "multi-lock [" + strings.Join(quoted, ", ") + "]"
	st := &mutexState{name: strings.Join(sorted, ","), label: label, client: c.st, done: make(chan struct{}), slot: make(chan struct{}, 1)}
	ms := &multiState{st: st, names: sorted}
	startDispatch.Do(func() { go dispatchReports() })
	err = c.use(func(p *C.latchkey_client) error {
		var first **C.char
		if len(cnames) > 0 {
			first = &cnames[0] // C pointers in Go memory: allowed to pass
		}
		h := newHandle(ms)
		cc.handle = C.uintptr_t(h)
		r := C.lk_multi_lock_new(p, first, C.size_t(len(cnames)), cc)
		if r.handle_taken == 0 {
			deleteHandle(h)
		}
		if r.status != C.LATCHKEY_OK {
			return takeError(r.status, r.err)
		}
		ms.multi = r.multi
		return nil
	})
	if err != nil {
		return nil, err
	}
	multi := ms.multi
	st.rc.init(func() { C.latchkey_multi_lock_free(multi) })
	if !c.st.addMutex(st) {
		st.rc.close()
		return nil, c.st.closedError()
	}
	m := &MultiLock{ms: ms}
	// A forgotten Close: free what holds nothing (as for a Mutex).
	m.cleanup = runtime.AddCleanup(m, func(st *mutexState) { st.abandon() }, st)
	return m, nil
}

// Names is the lock names in the order they are taken: sorted by their
// bytes, each once.
func (m *MultiLock) Names() []string { return slices.Clone(m.ms.names) }

// Acquire takes every lock and returns their MultiHold, waiting (without
// polling: a release in Redis wakes the waiter) until all are held or ctx
// ends, exactly as Mutex.Lock waits: a cancelled ctx returns promptly with
// an error matching both ErrCancelled and context.Canceled; a ctx deadline,
// both ErrTimeout and context.DeadlineExceeded; context.Background() waits
// for ever, or until the MultiLock or its Client is closed (ErrClosed).
// Whatever the error, no lock stays held.
func (m *MultiLock) Acquire(ctx context.Context) (*MultiHold, error) {
	ms := m.ms
	var r C.lk_multi_acquired
	err := ms.st.wait(ctx, func(timeout C.int64_t, cancel *C.latchkey_cancel) (C.latchkey_status, *C.latchkey_error) {
		r = C.lk_multi_acquire(ms.multi, timeout, cancel)
		return r.status, r.err
	})
	if err != nil {
		return nil, err
	}
	return newMultiHold(ms, r.guard)
}

// TryAcquire makes one attempt per lock, without waiting: the new
// MultiHold, or nil (and no error, holding none) if any lock is held by
// someone else, as Semaphore.TryAcquire; ErrConnection if Redis cannot be
// reached or does not answer within the command timeout.
func (m *MultiLock) TryAcquire() (*MultiHold, error) {
	ms := m.ms
	st := ms.st
	if !st.rc.acquire() {
		return nil, st.closedError()
	}
	st.tick.beforeBlockingCall()
	r := C.lk_multi_try_acquire(ms.multi)
	st.rc.release()
	switch r.status {
	case C.LATCHKEY_OK:
		return newMultiHold(ms, r.guard)
	case C.LATCHKEY_TIMEOUT:
		return nil, nil
	default:
		return nil, takeError(r.status, r.err)
	}
}

// Close interrupts the acquires in progress through this MultiLock (they
// fail with ErrClosed), releases every lock still held through it (their
// Lost channels close) and frees it. The errors are those of the releases.
// Closing twice is harmless.
func (m *MultiLock) Close() error {
	m.cleanup.Stop()
	ms := m.ms
	if !ms.st.shut() {
		return nil
	}
	var errs []error
	for _, h := range takeMultiHolds(ms.st.client, ms) {
		if err := h.closeRelease(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// MultiHold is one acquisition of a MultiLock, returned by
// MultiLock.Acquire and MultiLock.TryAcquire: one lease per lock, each with
// its own fencing token. Losing any lease loses the whole: the Lost channel
// closes and Check says ErrLost (naming the lock); Unlock then releases the
// other locks and says ErrNotHeld.
//
// A MultiHold is safe for concurrent use. It stays reachable until it ends
// (Unlock, loss, or Close of its MultiLock or Client), so the garbage
// collector never releases a held lock: keep the MultiHold to unlock it. A
// lost MultiHold the program drops is freed, which releases its other
// locks.
type MultiHold struct {
	ms     *multiState
	guard  *multiGuardRef
	fences []uint64
	lost   chan struct{} // closed once, when the hold ends

	mu     sync.Mutex
	ending endKind
	reason string
}

// multiGuardRef is the C guard of a MultiHold, freed once (see guardRef).
type multiGuardRef struct {
	// Read-locked while a call uses p; write-locked to free it.
	mu sync.RWMutex
	p  *C.latchkey_multi_guard // nil once freed
}

// releaseFree releases and frees the guard, once; ok is false if it had
// been freed already.
func (g *multiGuardRef) releaseFree() (err error, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.p == nil {
		return nil, false
	}
	r := C.lk_multi_release_free(g.p)
	g.p = nil
	return resultError(r), true
}

// multiHolds records every live MultiHold by client: what keeps a held one
// reachable, what Client.Close and MultiLock.Close end, and where a lost
// lease's report looks for its hold.
var multiHolds struct {
	sync.Mutex
	byClient map[*clientState]map[*MultiHold]struct{}
}

// addMultiHold records a new live hold; false (and nothing recorded) once
// its client or MultiLock is closed. Under the client's mutex, as
// clientState.addHold, so that a close never misses it.
func addMultiHold(h *MultiHold) bool {
	c := h.ms.st.client
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || h.ms.st.closed.Load() {
		return false
	}
	multiHolds.Lock()
	defer multiHolds.Unlock()
	if multiHolds.byClient == nil {
		multiHolds.byClient = make(map[*clientState]map[*MultiHold]struct{})
	}
	set := multiHolds.byClient[c]
	if set == nil {
		set = make(map[*MultiHold]struct{})
		multiHolds.byClient[c] = set
	}
	set[h] = struct{}{}
	return true
}

func removeMultiHold(h *MultiHold) {
	c := h.ms.st.client
	multiHolds.Lock()
	defer multiHolds.Unlock()
	if set := multiHolds.byClient[c]; set != nil {
		delete(set, h)
		if len(set) == 0 {
			delete(multiHolds.byClient, c)
		}
	}
}

// takeMultiHolds takes the live holds of client c made through ms (all of
// c's when ms is nil) out of the registry.
func takeMultiHolds(c *clientState, ms *multiState) []*MultiHold {
	multiHolds.Lock()
	defer multiHolds.Unlock()
	var out []*MultiHold
	set := multiHolds.byClient[c]
	for h := range set {
		if ms == nil || h.ms == ms {
			out = append(out, h)
			delete(set, h)
		}
	}
	if len(set) == 0 {
		delete(multiHolds.byClient, c)
	}
	return out
}

// endMultiHolds is Client.Close's part for multi-locks: the library has
// released every lock already; the holds end (ErrClosed) and their guards
// are freed.
func endMultiHolds(c *clientState) {
	for _, h := range takeMultiHolds(c, nil) {
		h.end(endClosed, "")
		_, _ = h.guard.releaseFree()
	}
}

// lost handles the watchdog's report that a lease of one of this
// MultiLock's locks was lost (the report names the lease by an owner token
// that the multi-guard does not expose): every live hold of it whose guard
// says LATCHKEY_LOST ends. Runs on the report goroutine; asks local state
// only.
func (ms *multiState) lost() {
	multiHolds.Lock()
	var mine []*MultiHold
	for h := range multiHolds.byClient[ms.st.client] {
		if h.ms == ms {
			mine = append(mine, h)
		}
	}
	multiHolds.Unlock()
	for _, h := range mine {
		h.endIfLost()
	}
}

// newMultiHold records a fresh acquisition. A closed client or MultiLock
// gives the locks straight back.
func newMultiHold(ms *multiState, guard *C.latchkey_multi_guard) (*MultiHold, error) {
	h := &MultiHold{
		ms:     ms,
		guard:  &multiGuardRef{p: guard},
		fences: make([]uint64, len(ms.names)),
		lost:   make(chan struct{}),
	}
	if len(h.fences) > 0 {
		n := C.lk_multi_tokens(guard, (*C.uint64_t)(unsafe.Pointer(&h.fences[0])), C.size_t(len(h.fences)))
		h.fences = h.fences[:min(int(n), len(h.fences))]
	}
	if !addMultiHold(h) {
		h.guard.releaseFree()
		return nil, ms.st.closedError()
	}
	runtime.AddCleanup(h, freeEndedMultiGuard, h.guard)
	// A loss reported before the hold was recorded found nothing to end.
	h.endIfLost()
	return h, nil
}

// endIfLost ends the hold if its guard says a lease was lost.
func (h *MultiHold) endIfLost() {
	h.guard.mu.RLock()
	if h.guard.p == nil {
		h.guard.mu.RUnlock()
		return
	}
	r := C.lk_multi_check(h.guard.p)
	h.guard.mu.RUnlock()
	if r.status == C.LATCHKEY_LOST {
		h.end(endLost, messageOf(resultError(r)))
	} else {
		_ = resultError(r) // frees the message of NOT_HELD (a close)
	}
}

// freeEndedMultiGuard is the cleanup of a MultiHold the program dropped. A
// live hold is in multiHolds, so this runs only for one that ended; the
// guard of a lost one is still allocated, and freeing it releases the locks
// it still holds, so not on the cleanup goroutine itself.
func freeEndedMultiGuard(g *multiGuardRef) {
	g.mu.RLock()
	allocated := g.p != nil
	g.mu.RUnlock()
	if allocated {
		go g.releaseFree()
	}
}

// end marks the hold ended (once) and closes its Lost channel.
func (h *MultiHold) end(kind endKind, reason string) bool {
	h.mu.Lock()
	if h.ending != live {
		h.mu.Unlock()
		return false
	}
	h.ending, h.reason = kind, reason
	close(h.lost)
	h.mu.Unlock()
	removeMultiHold(h)
	return true
}

func (h *MultiHold) state() (endKind, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ending, h.reason
}

// closeRelease is MultiLock.Close's release of a live hold.
func (h *MultiHold) closeRelease() error {
	h.end(endClosed, "")
	err, _ := h.guard.releaseFree()
	return err
}

// Names is the locks' names, in the order they were taken.
func (h *MultiHold) Names() []string { return slices.Clone(h.ms.names) }

// FencingTokens is the fencing token of each lock, in Names order: each
// strictly greater than every token issued before for its name. Pass them
// to the resources you protect (see Client.FencedWrite).
func (h *MultiHold) FencingTokens() []uint64 { return slices.Clone(h.fences) }

// Lost returns a channel that is closed, exactly once, when this hold
// ends: any of its leases was lost (renewal found a lock gone or taken, or
// could not reach Redis before the lease ran out; or Check found it lost),
// it was unlocked, or its MultiLock or Client was closed. Err says which.
// Only auto-renewed leases are watched.
func (h *MultiHold) Lost() <-chan struct{} { return h.lost }

// Err says why this hold ended, as Hold.Err: nil while Lost is open; then
// ErrLost (with the reason, naming the lock) if a lease was lost,
// ErrNotHeld if it was unlocked, ErrClosed if its MultiLock or Client was
// closed.
func (h *MultiHold) Err() error {
	kind, reason := h.state()
	switch kind {
	case live:
		return nil
	case endLost:
		return &Error{Status: StatusLost, Message: reason}
	case endClosed:
		return h.ms.st.closedError()
	}
	return h.unlockedError()
}

func (h *MultiHold) unlockedError() error {
	return &Error{Status: StatusNotHeld, Message: fmt.Sprintf("this hold of %s was unlocked", h.ms.st.describe())}
}

// endedError is the error of a call on a hold whose guard is gone.
func (h *MultiHold) endedError() error {
	if kind, _ := h.state(); kind == endClosed {
		return h.ms.st.closedError()
	}
	return h.unlockedError()
}

// Check tells whether every lease is still held, from local state (no
// Redis round trip): nil, or ErrLost naming the lock whose lease was lost;
// ErrNotHeld once unlocked, ErrClosed once its MultiLock or Client was
// closed.
func (h *MultiHold) Check() error {
	if kind, _ := h.state(); kind == endUnlocked || kind == endClosed {
		return h.endedError()
	}
	h.guard.mu.RLock()
	if h.guard.p == nil {
		h.guard.mu.RUnlock()
		return h.endedError()
	}
	r := C.lk_multi_check(h.guard.p)
	h.guard.mu.RUnlock()
	if r.status == C.LATCHKEY_LOST {
		err := resultError(r)
		h.end(endLost, messageOf(err))
		return err
	}
	return resultError(r)
}

// Unlock releases every lock, the last taken first. It fails with
// ErrNotHeld when a lease had been lost (every other lock is released all
// the same) or the hold was unlocked already, and with ErrClosed when its
// MultiLock or Client was closed (which released it). After any outcome
// the hold has ended and its Lost channel is closed.
func (h *MultiHold) Unlock() error {
	h.end(endUnlocked, "")
	h.ms.st.tick.beforeBlockingCall()
	err, ok := h.guard.releaseFree()
	if !ok {
		return h.endedError()
	}
	return err
}
