// Package latchkey is the Go binding of latchkey: distributed locks over
// Redis that never lose a lease silently, with fencing tokens, waiting
// without polling, Redlock, Sentinel and Cluster. The lock logic is the
// library's (Rust, through its C ABI); this package translates it to Go:
// errors usable with errors.Is, context.Context for waiting, a channel for
// a lost lease.
//
//	client, err := latchkey.Open("redis://127.0.0.1:6379")
//	if err != nil { ... }
//	defer client.Close()
//	m, err := client.NewMutex("orders:42", latchkey.WithTTL(10*time.Second))
//	if err != nil { ... }
//	defer m.Close()
//	h, err := m.Acquire(ctx) // ctx: cancellation and deadline
//	if err != nil { ... }
//	defer h.Unlock()
//	client.FencedWrite("orders:42:report", h.FencingToken(), data)
//
// Client.NewSemaphore makes a Semaphore: size permits whose holds are
// leases, each acquisition (Semaphore.Acquire(ctx, permits)) a Hold as
// above.
//
// # Semantics
//
// A lease lasts its ttl (WithTTL) in Redis and is renewed at ttl/3 by the
// client's watchdog thread. When renewal finds the lock gone or taken, or
// cannot reach Redis before the lease runs out, the lease is lost: Lost's
// channel closes, Check returns ErrLost, and Unlock returns ErrNotHeld.
// Every acquisition gets a fencing token, strictly increasing per lock
// name; give it to the resource you protect so that it can refuse a holder
// that was paused past its lease. See the repository's README for the
// guarantees of each deployment.
//
// # Holds, garbage collection, Close, Lost and goroutines
//
// Every acquisition is its own Hold (Mutex.Acquire, Mutex.TryAcquire) with
// its own owner token, which Redis checks: nothing done through one Hold
// touches another. The Lock/Unlock/... methods of Mutex work like
// sync.Mutex: a second Lock on one Mutex waits here until the first hold is
// Unlocked, even if its lease was lost, so they never refer to a later hold.
// Mutex.Locker adapts them to sync.Locker: Lock without a context, and a
// panic with the *Error where the Mutex method would return it.
//
// A Hold's Lost channel closes exactly once, when the hold ends: lost,
// unlocked, or closed (Check says which). A live hold stays reachable from
// its Client until it ends, so the garbage collector never releases a lock:
// the cleanups of dropped Clients, Mutexes and Holds free only what holds
// nothing. Client.Close (and Mutex.Close) interrupts waits, releases what
// is held and makes later calls fail with ErrClosed. Client, Mutex and Hold
// are safe for concurrent use. The repository's bindings/go/README.md
// states these rules in full.
//
// # Signals
//
// The library blocks asynchronous signals on a thread while it talks to
// Redis (they are delivered when the round trip ends) and on its own
// threads: a signal such as the Go runtime's preemption signal interrupting
// a socket read with a timeout would otherwise fail the call. Nothing is
// needed from Go code.
//
// # Linking
//
// The package uses cgo and by default links the static library
// target/release/liblatchkey.a of the repository it lives in (build it with
// `cargo build --release` at the repository root), so programs need no
// LD_LIBRARY_PATH. To link the shared library instead, build with the tag
// latchkey_shared:
//
//	go build -tags latchkey_shared ./...
//
// which links -L../../target/release -llatchkey with an rpath to that
// directory. The program then needs liblatchkey.so.0 (the soname) at run
// time: `make install` (and ldconfig), or
// `ln -s liblatchkey.so target/release/liblatchkey.so.0`.
package latchkey
