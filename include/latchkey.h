/*
 * latchkey.h: the C API of latchkey, distributed locks over Redis.
 *
 * Link with `pkg-config --cflags --libs latchkey` (shared) or
 * `pkg-config --static --cflags --libs latchkey` (static).
 *
 * CONVENTIONS
 *
 * Handles. latchkey_client, latchkey_lock, latchkey_guard, latchkey_cancel,
 * latchkey_client_options, latchkey_lock_options and latchkey_error are
 * opaque. A constructor (*_new, *_open, an acquire) writes a new handle to
 * its `*_out` argument only on success; the caller frees it with the
 * matching *_free function, which accepts NULL. Handles are independent:
 * freeing a client or a lock does not invalidate the locks or guards made
 * from it.
 *
 * Handle checks. The library records every handle (and every buffer or
 * array it returns) from creation until it is freed, with its type, and
 * every function looks a handle up before it touches it. So a handle of
 * the wrong type (a client passed as a lock), a handle that was already
 * freed, a second *_free of the same handle, or a pointer latchkey never
 * made returns LATCHKEY_INVALID_ARGUMENT and changes nothing (the *_free
 * functions return a status for this). The lookup never reads the memory
 * behind the pointer, so it is safe under ASan and valgrind. What cannot
 * be detected: (1) once the address of a freed handle is reused by a new
 * handle of the same type, the stale pointer names the new handle; (2) a
 * handle freed by one thread while another thread is still inside a call
 * with it: *_free must be the last call on a handle; (3) a buffer or array
 * freed with the wrong length is refused, but reading past its end is not.
 *
 * Statuses. Every function that can fail returns a latchkey_status. The
 * numbers are fixed and never reused; new ones are only added at the end,
 * so treat an unknown number as a failure. latchkey_status_name() names
 * them.
 *
 * Arguments. Strings are NUL-terminated UTF-8, read only during the call
 * (the library copies what it keeps). A NULL or misaligned pointer where
 * one is required, a string that is not UTF-8, or a number out of range
 * returns LATCHKEY_INVALID_ARGUMENT: never a crash. Output arguments are
 * named `*_out`, come last, must not be NULL (except `err_out`) and are
 * written only on success. A dangling pointer that is not a handle (a
 * freed string, an out-of-bounds buffer) cannot be detected.
 *
 * Errors. Every function returning a latchkey_status takes a last argument
 * `latchkey_error **err_out`. If it is not NULL, `*err_out` is set to NULL
 * on success and to a new latchkey_error on failure; read it with
 * latchkey_error_status() and latchkey_error_message(), free it with
 * latchkey_error_free(). This works even when consecutive calls run on
 * different threads (Go). Callers that pass NULL can read the calling
 * thread's last message with latchkey_last_error() instead. An `err_out`
 * that cannot be written (misaligned) is left alone and no error object is
 * made; the message is still available from latchkey_last_error().
 *
 * Panics. A bug inside latchkey (a Rust panic) never unwinds into the
 * caller: it returns LATCHKEY_PANIC with a message.
 *
 * Threads. Each type says how it may be shared: clients, locks, guards and
 * cancel handles are thread-safe; options objects are not. The lost-lease
 * callback runs on a library thread.
 *
 * Holds. Every successful acquire (nested reentrant ones too) returns a
 * latchkey_guard for that hold alone, with its own owner token that Redis
 * checks on release, extend and renewal: a stale guard never releases,
 * extends or vouches for a later hold. The lost-lease callback names the
 * hold by that token. Retries, unknown outcomes and cancellation follow
 * the README's Semantics section.
 *
 * fork(). Holds are not inherited: in a forked child, a guard taken by the
 * parent is inert (latchkey_guard_check returns LATCHKEY_LOST,
 * latchkey_guard_release returns LATCHKEY_NOT_HELD without touching Redis,
 * latchkey_guard_free releases nothing) and the child never renews or
 * reports the parent's holds. The child may use inherited clients and
 * locks to take holds of its own.
 *
 * Blocking. Functions that talk to Redis block the calling thread for a
 * round trip, bounded by the client's command timeout (plus the connect
 * timeout when a new connection is made). latchkey_lock_acquire blocks
 * until acquired, its timeout, or its cancel handle.
 *
 * EXAMPLE
 *
 *   latchkey_client *client = NULL;
 *   latchkey_lock *lock = NULL;
 *   latchkey_guard *guard = NULL;
 *   latchkey_error *err = NULL;
 *   uint64_t token = 0;
 *   if (latchkey_client_open("redis://127.0.0.1:6379", NULL, &client, &err) ||
 *       latchkey_lock_new(client, "nightly-report", NULL, &lock, &err) ||
 *       latchkey_lock_acquire(lock, 30000, NULL, &guard, &err) ||
 *       latchkey_guard_fencing_token(guard, &token, &err)) {
 *     fprintf(stderr, "%s: %s\n", latchkey_status_name(latchkey_error_status(err)),
 *             latchkey_error_message(err));
 *   } else {
 *     ... work, handing `token` to the resource ...
 *     if (latchkey_guard_release(guard, &err) != LATCHKEY_OK)
 *       fprintf(stderr, "lock was lost: %s\n", latchkey_error_message(err));
 *   }
 *   latchkey_error_free(err);
 *   latchkey_guard_free(guard);
 *   latchkey_lock_free(lock);
 *   latchkey_client_free(client);
 */

#ifndef LATCHKEY_H
#define LATCHKEY_H

/* Generated by cbindgen from src/ffi; do not edit. Regenerate with `make header`. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LATCHKEY_VERSION_MAJOR 0
#define LATCHKEY_VERSION_MINOR 1
#define LATCHKEY_VERSION_PATCH 0
#define LATCHKEY_VERSION_STRING "0.1.0"

/**
 * The size of latchkey_lock_info's `owner_token`: 32 hex digits and a NUL.
 */
#define LATCHKEY_OWNER_TOKEN_SIZE 33

/**
 * The outcome of a call. The numbers are part of the ABI: they never
 * change and are never reused; new statuses are only added at the end.
 */
enum latchkey_status
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : int32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
  /**
   * Success.
   */
  LATCHKEY_OK = 0,
  /**
   * An argument was unusable: a NULL or misaligned pointer, a string that
   * is not UTF-8, an empty name, a number out of range, a bad URL.
   */
  LATCHKEY_INVALID_ARGUMENT = 1,
  /**
   * The lock was still held by another owner at the deadline (or, with
   * wait-for-replicas, too few replicas confirmed it in time).
   */
  LATCHKEY_TIMEOUT = 2,
  /**
   * A release or extend found that this owner does not hold the lock (it
   * expired, was force-unlocked, or the guard was already released).
   */
  LATCHKEY_NOT_HELD = 3,
  /**
   * The lease was lost while it was supposed to be held.
   */
  LATCHKEY_LOST = 4,
  /**
   * The wait was cancelled through a latchkey_cancel handle.
   */
  LATCHKEY_CANCELLED = 5,
  /**
   * Redis could not be reached, the connection broke, or Redis did not
   * answer within the command timeout (a command timeout is never
   * LATCHKEY_TIMEOUT).
   */
  LATCHKEY_CONNECTION = 6,
  /**
   * Redis answered with an error.
   */
  LATCHKEY_SERVER = 7,
  /**
   * A bug inside latchkey was caught at the C boundary (a Rust panic); the
   * message says where. The library stays usable.
   */
  LATCHKEY_PANIC = 8,
  /**
   * Redlock: too few masters answered (fewer than N/2+1) for the outcome
   * to be known; the others are down, paused or unreachable. Also: too
   * few of those that answered count yet, being younger than the restart
   * delay (latchkey_error_is_busy says so; the message names it).
   */
  LATCHKEY_NO_QUORUM = 9,
  /**
   * Redis refused the credentials: a wrong user name or password, or
   * none given to a server that requires one. Retrying will not help;
   * fix the URL (or the Sentinel master password).
   */
  LATCHKEY_AUTH = 10,
  /**
   * The client was closed (latchkey_client_close): an acquire that was
   * waiting, or that started afterwards, ends with this.
   */
  LATCHKEY_CLOSED = 11,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum latchkey_status latchkey_status;
#else
typedef int32_t latchkey_status;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Interrupts waiting acquires. Once triggered, every latchkey_lock_acquire
 * given this handle returns LATCHKEY_CANCELLED promptly, now and later,
 * until latchkey_cancel_reset.
 *
 * Threads: fully thread-safe: trigger it from any thread (a signal-handling
 * thread, a Go context's goroutine) while others wait on it. It must not be
 * freed while an acquire uses it.
 */
typedef struct latchkey_cancel latchkey_cancel;

/**
 * A connection to Redis (pools of connections, a release listener and a
 * renewal thread), shared by any number of locks.
 *
 * Threads: fully thread-safe; share one client between all threads.
 * Freeing it does not invalidate locks or guards made from it: they keep
 * the connections alive until the last of them is freed.
 */
typedef struct latchkey_client latchkey_client;

/**
 * Options for the latchkey_client_open* functions. Options not set keep
 * the library's defaults (connect timeout 2 s, command timeout 2 s, prefix
 * "latchkey", pool size 8, spin limit LATCHKEY_SPIN_US or none, no
 * replica wait). New options come as new setters, so the ABI can grow.
 *
 * Values are checked when the client is opened, not by the setters (except
 * latchkey_client_options_set_spin_us, which also refuses a limit above
 * 10 ms at once).
 * Threads: not thread-safe; set it up on one thread, then it may be read
 * by the latchkey_client_open* functions from any thread.
 */
typedef struct latchkey_client_options latchkey_client_options;

/**
 * A named election: candidates campaign, one at a time leads (with a
 * term that increases with every leadership), observers see who leads.
 *
 * Threads: fully thread-safe; share it between threads.
 */
typedef struct latchkey_election latchkey_election;

/**
 * The error of one failed call: its status and message. Returned through
 * the `err_out` argument that every fallible function takes last.
 *
 * Ownership: the caller owns it and frees it with latchkey_error_free.
 * Threads: immutable; read it from any thread.
 */
typedef struct latchkey_error latchkey_error;

/**
 * Proof of holding a lock, from a successful acquire. Its owner token,
 * fencing token and name stay readable after release, until it is freed.
 *
 * Threads: thread-safe. Any thread may use it, several at once (say, one
 * thread checks or extends while another releases), except that
 * latchkey_guard_free must be the last call on it. (Calls that change it
 * take a non-const pointer; none needs exclusive access.) It is tied to no
 * thread: acquire on one thread and release on another is fine.
 */
typedef struct latchkey_guard latchkey_guard;

/**
 * A named distributed lock.
 *
 * Threads: fully thread-safe; share it between threads, or make one per
 * thread. For a reentrant lock the handle is the owner: two handles for the
 * same name exclude each other, one handle may nest (whatever the thread).
 */
typedef struct latchkey_lock latchkey_lock;

/**
 * Options for latchkey_lock_new. Options not set keep the library's
 * defaults: ttl 30 s, auto-renewed, not reentrant, retry jitter 5 ms,
 * renewal every ttl/3, no lost-lease callback. New options come as new
 * setters, so the ABI can grow.
 *
 * Values are checked by latchkey_lock_new, not by the setters.
 * Threads: not thread-safe; set it up on one thread, then it may be read
 * by latchkey_lock_new from any thread.
 */
typedef struct latchkey_lock_options latchkey_lock_options;

/**
 * Proof that every lock of a multi-lock is held. Losing any one lease
 * loses the whole (latchkey_multi_guard_check says LATCHKEY_LOST).
 *
 * Threads: thread-safe, as latchkey_guard; latchkey_multi_guard_free must
 * be the last call on it.
 */
typedef struct latchkey_multi_guard latchkey_multi_guard;

/**
 * Several named locks, taken all together or not at all, in the order of
 * their names' bytes (so multi-locks of overlapping sets never deadlock).
 *
 * Threads: fully thread-safe; share it between threads.
 */
typedef struct latchkey_multi_lock latchkey_multi_lock;

/**
 * A named read-write lock: any number of readers, or one writer; a
 * waiting writer stops new readers (writer preference); each hold has its
 * own lease. Not reentrant.
 *
 * Threads: fully thread-safe; share it between threads.
 */
typedef struct latchkey_rwlock latchkey_rwlock;

/**
 * A named semaphore: `size` permits, each hold taking one or more of them
 * as a lease of its own, renewed while held and reported when lost, and
 * given back when its holder dies and its lease ends.
 *
 * Threads: fully thread-safe; share it between threads.
 */
typedef struct latchkey_semaphore latchkey_semaphore;

/**
 * The state of one lock in Redis, filled by latchkey_client_inspect.
 * When `locked` is false every other field is zero. (For Redlock, each
 * master's own view comes from latchkey_client_inspect_masters.)
 */
typedef struct latchkey_lock_info {
  /**
   * Whether anyone holds the lock.
   */
  bool locked;
  /**
   * The holder's owner token: 32 hex digits and a NUL (a longer token
   * written by another program is cut to 32 characters).
   */
  char owner_token[LATCHKEY_OWNER_TOKEN_SIZE];
  /**
   * The fencing token issued to the holder.
   */
  uint64_t fencing_token;
  /**
   * Milliseconds until the lease expires in Redis; -1 if it has no expiry.
   */
  int64_t ttl_ms;
  /**
   * Whether it is a reentrant lock.
   */
  bool reentrant;
  /**
   * How many nested holds a reentrant lock has (1 for a plain lock).
   */
  uint64_t hold_count;
} latchkey_lock_info;

/**
 * One Redlock master's view of a lock, from latchkey_client_inspect_masters.
 * The strings belong to the array and stay valid until
 * latchkey_master_states_free.
 */
typedef struct latchkey_master_state {
  /**
   * Which master ("redis at host:port").
   */
  const char *server;
  /**
   * The owner token this master holds for the lock, or NULL if none.
   */
  const char *holder;
  /**
   * Whether this master knows a fencing token for the holder.
   */
  bool has_fencing_token;
  /**
   * That fencing token (0 when `has_fencing_token` is false).
   */
  uint64_t fencing_token;
  /**
   * Milliseconds until the key expires on this master; -1 if it has no
   * expiry or the master did not say.
   */
  int64_t ttl_ms;
  /**
   * Why this master did not answer, or NULL if it did.
   */
  const char *error;
} latchkey_master_state;

/**
 * One waiter queued for a lock, from latchkey_client_inspect_queue. The
 * id belongs to the array and stays valid until
 * latchkey_queued_waiters_free.
 */
typedef struct latchkey_queued_waiter {
  /**
   * The entry's id: "w:" and a random id, one per waiting acquisition
   * (not the owner token it gets when it takes the lock).
   */
  const char *id;
  /**
   * Milliseconds until the entry runs out unless its waiter asks again
   * (above 0 and at most 15000: a live waiter renews it every 5 s at
   * the latest).
   */
  uint64_t expires_in_ms;
} latchkey_queued_waiter;

/**
 * Called when an auto-renewed lease is lost: with the `user` pointer given
 * to latchkey_lock_options_set_on_lost, the lock's name, the lost hold's
 * owner token (the same string latchkey_guard_owner_token gives for that
 * guard: unique per acquisition, nested reentrant ones included, so it
 * names exactly one guard), its fencing token and why it was lost. `name`,
 * `owner_token` and `reason` are valid only during the call. Each hold is
 * reported at most once.
 *
 * It runs on the client's renewal (watchdog) thread, not on a thread of
 * yours, possibly while your threads use the guard. Keep it short: it
 * delays other leases' renewals (so does any blocking latchkey call made
 * from it).
 */
typedef void (*latchkey_lost_callback)(void *user,
                                       const char *name,
                                       const char *owner_token,
                                       uint64_t fencing_token,
                                       const char *reason);

/**
 * Frees a `user` pointer once the library no longer needs it.
 */
typedef void (*latchkey_user_free)(void *user);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * A short English name for `status` ("ok", "timeout", "not held", ...),
 * or "unknown status" for a number this version does not know.
 *
 * Ownership: the string is static; do not free it.
 * Threads: any thread. Blocks: no. Never fails.
 */
const char *latchkey_status_name(latchkey_status status);

/**
 * The message of the calling thread's most recent failed call, or "" if
 * that thread's most recent call returning a latchkey_status succeeded.
 *
 * Ownership: owned by the library; valid until the calling thread's next
 * call that returns a latchkey_status. Copy it to keep it.
 * Threads: per thread. Callers whose consecutive calls may run on
 * different threads (Go) must use `err_out` instead.
 * Blocks: no. Never fails.
 */
const char *latchkey_last_error(void);

/**
 * The status of `err`; LATCHKEY_OK when `err` is NULL, and
 * LATCHKEY_INVALID_ARGUMENT when it is not a live error (freed already, or
 * not an error: see "Handles" at the top).
 *
 * Threads: any thread. Blocks: no. Never fails.
 *
 * # Safety
 * `err` is NULL or an error not yet freed.
 */
latchkey_status latchkey_error_status(const struct latchkey_error *err);

/**
 * Whether the deployment answered but could not grant the lock yet, for
 * a reason that passes: Redlock masters younger than the restart delay
 * (LATCHKEY_NO_QUORUM), a Cluster slot in migration (LATCHKEY_CONNECTION).
 * A waiting acquire waits such a failure out until its deadline, even on
 * its first attempt; a binding that tries once before it waits (and
 * waits only after LATCHKEY_TIMEOUT) waits after these too. false when
 * `err` is NULL or not a live error.
 *
 * Threads: any thread. Blocks: no. Never fails.
 *
 * # Safety
 * `err` is NULL or an error not yet freed.
 */
bool latchkey_error_is_busy(const struct latchkey_error *err);

/**
 * The message of `err`: what happened and, where it helps, what to do.
 * "" when `err` is NULL or not a live error.
 *
 * Ownership: owned by `err`; valid until latchkey_error_free(err).
 * Threads: any thread. Blocks: no. Never fails.
 *
 * # Safety
 * `err` is NULL or an error not yet freed.
 */
const char *latchkey_error_message(const struct latchkey_error *err);

/**
 * Frees an error returned through `err_out`. NULL is ignored.
 *
 * Threads: any thread, once. Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live error: see "Handles" at the top; nothing is freed);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `err` is NULL or an error from `err_out` not yet freed; it is invalid
 * afterwards.
 */
latchkey_status latchkey_error_free(struct latchkey_error *err);

/**
 * The library's version, "MAJOR.MINOR.PATCH", as in Cargo.toml. Compare it
 * with LATCHKEY_VERSION_STRING to see whether the library a program runs
 * with is the one it was compiled against.
 *
 * Ownership: static; do not free. Threads: any thread. Blocks: no.
 * Never fails.
 */
const char *latchkey_version(void);

/**
 * For tests only: panics inside the library, to show that a panic comes
 * back as LATCHKEY_PANIC with a message instead of crashing the caller.
 * (The panic message is also printed on stderr by Rust's panic hook.)
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_PANIC, always.
 *
 * # Safety
 * `err_out` is NULL or writable.
 */
latchkey_status latchkey_debug_panic(struct latchkey_error **err_out);

/**
 * Makes an options object with every option unset.
 *
 * Ownership: on success `*options_out` is new; free it with
 * latchkey_client_options_free (any time after opening the client).
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options_out` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options_out` is NULL or writable; `err_out` is NULL or writable.
 */
latchkey_status latchkey_client_options_new(struct latchkey_client_options **options_out,
                                            struct latchkey_error **err_out);

/**
 * Frees an options object. NULL is ignored.
 *
 * Threads: any thread, once. Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live options object: see "Handles" at the top; nothing is freed);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or from latchkey_client_options_new, not yet freed.
 */
latchkey_status latchkey_client_options_free(struct latchkey_client_options *options);

/**
 * Sets the time allowed to connect and handshake, in milliseconds
 * (1 to 86400000; checked when the client is opened).
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_client_options_set_connect_timeout_ms(struct latchkey_client_options *options,
                                                               uint64_t timeout_ms,
                                                               struct latchkey_error **err_out);

/**
 * Sets the time allowed for Redis to answer one command, in milliseconds
 * (1 to 86400000; checked when the client is opened). A stopped server makes
 * a call fail with LATCHKEY_CONNECTION after this long instead of hanging.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_client_options_set_command_timeout_ms(struct latchkey_client_options *options,
                                                               uint64_t timeout_ms,
                                                               struct latchkey_error **err_out);

/**
 * Sets the prefix of every Redis key (1 to 256 bytes, no '{', '}';
 * checked when the client is opened). The string is copied.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `prefix`
 * not UTF-8); LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread;
 * `prefix` is NULL or a NUL-terminated string.
 */
latchkey_status latchkey_client_options_set_prefix(struct latchkey_client_options *options,
                                                   const char *prefix,
                                                   struct latchkey_error **err_out);

/**
 * Sets how many idle connections the pool keeps (1 to 1024; checked when
 * the client is opened). More threads may use the client at once; extra
 * connections are closed after use.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_client_options_set_pool_size(struct latchkey_client_options *options,
                                                      size_t pool_size,
                                                      struct latchkey_error **err_out);

/**
 * Sets how long, in microseconds, a thread waiting for a reply from Redis
 * keeps asking the socket before it sleeps until the reply (default
 * LATCHKEY_SPIN_US from the environment, else 0; 0 turns spinning off; at
 * most 10000, that is 10 ms). A thread woken by the reply costs a
 * scheduler wake-up, which on a loaded virtual machine can cost more than
 * the round trip; spinning saves it at the price of the CPU spent asking
 * (BENCHMARKS.md shows both on one machine). Each server's
 * connections spin only while its replies come within the limit (a slower
 * server is probed now and then), and at most one fewer threads of the
 * process than it has cores spin at once. A value above 10000 is refused
 * here, and the options keep the limit they had.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL,
 * `spin_us` above 10000); LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_client_options_set_spin_us(struct latchkey_client_options *options,
                                                    uint64_t spin_us,
                                                    struct latchkey_error **err_out);

/**
 * After each successful acquire, waits until `replicas` replicas have the
 * lock (Redis WAIT), at most `timeout_ms` milliseconds; if fewer confirm,
 * the lock is released again and the acquire fails with LATCHKEY_TIMEOUT.
 * Narrows what a failover can lose. For a single server, Sentinel or
 * Cluster, not Redlock (1 to 64 replicas; checked when the client is
 * opened). On a Cluster the WAIT goes to the master serving the lock's
 * slot and counts that master's replicas: `replicas` is per master.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_client_options_set_wait_for_replicas(struct latchkey_client_options *options,
                                                              size_t replicas,
                                                              uint64_t timeout_ms,
                                                              struct latchkey_error **err_out);

/**
 * Sets the password of the master found through Sentinel (the sentinel
 * URLs carry the sentinels' own credentials, if any). The string is copied
 * and never shown in messages. Only for latchkey_client_open_sentinel: the
 * other latchkey_client_open* functions refuse options with it
 * (LATCHKEY_INVALID_ARGUMENT); give the password in their URLs.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument,
 * `password` not UTF-8); LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread;
 * `password` is NULL or a NUL-terminated string.
 */
latchkey_status latchkey_client_options_set_master_password(struct latchkey_client_options *options,
                                                            const char *password,
                                                            struct latchkey_error **err_out);

/**
 * Sets the database number on the master found through Sentinel
 * (default 0; 0 or more). Only for latchkey_client_open_sentinel: the
 * other latchkey_client_open* functions refuse options with it
 * (LATCHKEY_INVALID_ARGUMENT); give the database in their URLs.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_client_options_set_master_db(struct latchkey_client_options *options,
                                                      int64_t db,
                                                      struct latchkey_error **err_out);

/**
 * Redlock only: how long, in milliseconds, a master stays out of every
 * quorum after it (re)started. A master that restarts without its keys
 * would grant again locks it had granted before; the Redlock paper's
 * delayed restart keeps it out until those have expired. Unset (the
 * default): the largest ttl the client has used; a master that refuses
 * INFO counts as just restarted. So for one ttl after most masters of a
 * deployment start, no lock is granted: acquires wait, and fail with
 * LATCHKEY_NO_QUORUM (saying why) when they stop waiting. When clients use
 * different ttls, set it on every client to the largest ttl any uses.
 * 0: every master counts as soon as it answers (only for masters that
 * keep their keys across restarts, or whose restarts operators delay).
 * At most 365 days; checked when the client is opened (any other
 * deployment refuses it).
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_client_options_set_redlock_restart_delay_ms(struct latchkey_client_options *options,
                                                                     uint64_t delay_ms,
                                                                     struct latchkey_error **err_out);

/**
 * For rediss:// URLs: trust the CA certificates in this PEM file instead
 * of the system's CA store. The path is copied; the file is read when the
 * client is opened (a missing or unreadable file, or one without a
 * certificate, fails the open with LATCHKEY_INVALID_ARGUMENT naming it).
 * Any TLS option with no rediss:// URL fails the open the same way.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `path`
 * not UTF-8); LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread;
 * `path` is NULL or a NUL-terminated string.
 */
latchkey_status latchkey_client_options_set_tls_ca_file(struct latchkey_client_options *options,
                                                        const char *path,
                                                        struct latchkey_error **err_out);

/**
 * For rediss:// URLs: the client certificate (PEM chain) and private key
 * (PEM) to show to a server that asks for one (mutual TLS,
 * `tls-auth-clients yes`). The paths are copied; the files are read when
 * the client is opened (LATCHKEY_INVALID_ARGUMENT, naming the file, when
 * one is missing or the key does not match the certificate).
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, a path
 * not UTF-8); LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread;
 * `cert_file` and `key_file` are NULL or NUL-terminated strings.
 */
latchkey_status latchkey_client_options_set_tls_client_cert(struct latchkey_client_options *options,
                                                            const char *cert_file,
                                                            const char *key_file,
                                                            struct latchkey_error **err_out);

/**
 * For rediss:// URLs: the name the server's certificate must carry, when
 * it differs from the URL's host (e.g. the URL names an IP address). The
 * string is copied; checked when the client is opened.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `name`
 * not UTF-8); LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread;
 * `name` is NULL or a NUL-terminated string.
 */
latchkey_status latchkey_client_options_set_tls_server_name(struct latchkey_client_options *options,
                                                            const char *name,
                                                            struct latchkey_error **err_out);

/**
 * For rediss:// URLs: when `skip` is true, ACCEPT ANY SERVER CERTIFICATE.
 * The connection is encrypted, but to whoever answers: anyone on the path
 * can pose as the server. For tests against a throwaway server only.
 *
 * Threads: see latchkey_client_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_client_options_set_tls_insecure_skip_verify(struct latchkey_client_options *options,
                                                                     bool skip,
                                                                     struct latchkey_error **err_out);

/**
 * Makes a client for the Redis at `url`
 * (`redis://[user:password@]host[:port][/db]` or `unix:///path`), with
 * `options` (NULL for the defaults). No connection is made yet: the first
 * command connects, so a client can be made before Redis is up. Error
 * messages never show the password.
 *
 * Ownership: on success `*client_out` is new; free it with
 * latchkey_client_free. `url` and `options` are only read during the call.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `url` or
 * `client_out`, `url` not UTF-8 or not a Redis URL, an option out of
 * range); LATCHKEY_PANIC.
 *
 * # Safety
 * `url` is NULL or a NUL-terminated string; `options` is NULL or a live
 * options object; `client_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_open(const char *url,
                                     const struct latchkey_client_options *options,
                                     struct latchkey_client **client_out,
                                     struct latchkey_error **err_out);

/**
 * Makes a Redlock client over `url_count` independent masters (an odd
 * number, at least 3), given as an array of URLs in the form
 * latchkey_client_open takes, with `options` (NULL for the defaults). A
 * lock is held when a quorum (N/2+1) of masters granted it, and only within
 * ttl - elapsed - drift; a master that is down or slow is a vote against,
 * not a failure. Everything else (locks, guards, fencing) works as with
 * one server.
 *
 * Ownership: as latchkey_client_open; `urls` is only read during the call.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `urls`, a NULL,
 * non-UTF-8 or bad URL in it, an even number or fewer than 3 URLs, an
 * option out of range, NULL `client_out`); LATCHKEY_PANIC.
 *
 * # Safety
 * `urls` is NULL or points to `url_count` pointers, each NULL or a
 * NUL-terminated string; `options` is NULL or a live options object;
 * `client_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_open_redlock(const char *const *urls,
                                             size_t url_count,
                                             const struct latchkey_client_options *options,
                                             struct latchkey_client **client_out,
                                             struct latchkey_error **err_out);

/**
 * Makes a client that finds the master through Redis Sentinel: `url_count`
 * sentinel URLs and the monitored master's name. The client follows
 * failovers: a command that finds the old master gone or demoted asks the
 * sentinels again. The master's own password and database are options
 * (latchkey_client_options_set_master_password, _set_master_db).
 *
 * Ownership: as latchkey_client_open; the strings are only read during the
 * call.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `sentinel_urls`,
 * `master_name` or `client_out`; no URLs; a NULL, non-UTF-8 or bad URL; an
 * empty master name; an option out of range); LATCHKEY_PANIC.
 *
 * # Safety
 * `sentinel_urls` is NULL or points to `url_count` pointers, each NULL or
 * a NUL-terminated string; `master_name` is NULL or a NUL-terminated
 * string; `options` is NULL or a live options object; `client_out` and
 * `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_open_sentinel(const char *const *sentinel_urls,
                                              size_t url_count,
                                              const char *master_name,
                                              const struct latchkey_client_options *options,
                                              struct latchkey_client **client_out,
                                              struct latchkey_error **err_out);

/**
 * Makes a client for a Redis Cluster, given `url_count` of its nodes.
 * Every key of a lock shares a hash tag, so each script runs on the master
 * that owns the lock's slot; MOVED and ASK are followed and the slot map
 * is reloaded after a failover.
 *
 * Ownership: as latchkey_client_open; `seed_urls` is only read during the
 * call.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `seed_urls` or
 * `client_out`; no URLs; a NULL, non-UTF-8 or bad URL; an option out of
 * range); LATCHKEY_PANIC.
 *
 * # Safety
 * `seed_urls` is NULL or points to `url_count` pointers, each NULL or a
 * NUL-terminated string; `options` is NULL or a live options object;
 * `client_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_open_cluster(const char *const *seed_urls,
                                             size_t url_count,
                                             const struct latchkey_client_options *options,
                                             struct latchkey_client **client_out,
                                             struct latchkey_error **err_out);

/**
 * Frees a client handle. NULL is ignored. Locks and guards made from it
 * stay usable; the connections close when the last of them is freed.
 *
 * Threads: any thread, once, when no other call uses this handle.
 * Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live client: see "Handles" at the top; nothing is freed);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or from latchkey_client_open, not yet freed.
 */
latchkey_status latchkey_client_free(struct latchkey_client *client);

/**
 * Closes the client (every handle and lock made from it): every lock
 * still held through it is released in Redis (in parallel, each release
 * bounded by the command timeout) and its guards then say it is not held
 * (latchkey_guard_check returns LATCHKEY_NOT_HELD, latchkey_guard_lost
 * false: a close is an ending, not a loss, and no lost callback runs);
 * every acquire of the client that is waiting returns promptly with
 * LATCHKEY_CLOSED, and so does every later acquire. Inspection and fenced
 * writes keep working. Closing again does nothing. The handle stays
 * allocated: free it with latchkey_client_free as usual.
 *
 * Threads: any thread, also while other threads wait in an acquire.
 * Blocks: while the releases run (at most about the command timeout).
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (not a live client);
 * LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM
 * (a release Redis did not confirm: the client is closed all the same, and
 * the hold is given back in the background once Redis answers);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `err_out` is NULL or writable.
 */
latchkey_status latchkey_client_close(const struct latchkey_client *client,
                                      struct latchkey_error **err_out);

/**
 * The client's key prefix.
 *
 * Ownership: `*prefix_out` belongs to the client; valid until
 * latchkey_client_free.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `prefix_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_client_prefix(const struct latchkey_client *client,
                                       const char **prefix_out,
                                       struct latchkey_error **err_out);

/**
 * Who holds the lock `name`, if anyone, written to `*info_out`
 * (`locked` false and all else zero when nobody does).
 *
 * Threads: any thread. Blocks: for one Redis round trip (Redlock: one to
 * every master).
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `name`
 * empty, longer than 4096 bytes or not UTF-8; the URL's database does not
 * exist); LATCHKEY_CONNECTION (Redis unreachable or no answer within the
 * command timeout), LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM
 * (Redlock: too few masters answered to tell who holds it);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `info_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_inspect(const struct latchkey_client *client,
                                        const char *name,
                                        struct latchkey_lock_info *info_out,
                                        struct latchkey_error **err_out);

/**
 * Whether the lock `name` is held by anyone, written to `*locked_out`.
 *
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, bad
 * `name`); LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `locked_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_is_locked(const struct latchkey_client *client,
                                          const char *name,
                                          bool *locked_out,
                                          struct latchkey_error **err_out);

/**
 * What each Redlock master says about the lock `name`: an array of
 * `*count_out` states written to `*masters_out`. A client for one server
 * (or Sentinel, Cluster), or a lock nobody holds, gives 0 states and NULL.
 *
 * Ownership: free the array with latchkey_master_states_free(*masters_out,
 * *count_out).
 * Threads: any thread. Blocks: for one round trip to every master.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, bad
 * `name`); LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_NO_QUORUM (too few masters answered to tell who holds it);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `masters_out`, `count_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_inspect_masters(const struct latchkey_client *client,
                                                const char *name,
                                                struct latchkey_master_state **masters_out,
                                                size_t *count_out,
                                                struct latchkey_error **err_out);

/**
 * Frees an array from latchkey_client_inspect_masters, given with its
 * count. NULL is ignored.
 *
 * Threads: any thread, once. Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live array from latchkey_client_inspect_masters, or `count` is not its
 * length; nothing is freed); LATCHKEY_PANIC.
 *
 * # Safety
 * `masters` is NULL or an array from latchkey_client_inspect_masters, not
 * yet freed, and `count` its length.
 */
latchkey_status latchkey_master_states_free(struct latchkey_master_state *masters, size_t count);

/**
 * Who holds the lock `name` and who waits for it, in one snapshot (one
 * script): `*info_out` as latchkey_client_inspect fills it, and the live
 * queued waiters in the order a release hands the lock on (the one that
 * queued earliest first; entries that ran out, their waiter dead,
 * left out): an array of `*count_out` waiters written to `*waiters_out`,
 * and the number of live waiters to `*total_out`. At most 1000 waiters
 * are listed; `*total_out` counts them all, so it is above `*count_out`
 * when the list was cut. A new function rather than new fields of
 * latchkey_lock_info, whose size programs compiled against older headers
 * rely on.
 *
 * No waiters (0, NULL and 0) when nobody waits, for a lock that is free
 * (`locked` false: even in the rare moment a release has handed it to a
 * queued waiter that has not taken it yet), and always for Redlock, whose
 * waiters do not queue (its masters share no queue).
 *
 * Ownership: free the array with latchkey_queued_waiters_free(*waiters_out,
 * *count_out).
 * Threads: any thread. Blocks: for one Redis round trip (Redlock: one to
 * every master).
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `name`
 * empty, longer than 4096 bytes or not UTF-8; the URL's database does not
 * exist); LATCHKEY_CONNECTION (Redis unreachable or no answer within the
 * command timeout), LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM
 * (Redlock: too few masters answered to tell who holds it);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `info_out`, `waiters_out`, `count_out`, `total_out` and
 * `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_inspect_queue(const struct latchkey_client *client,
                                              const char *name,
                                              struct latchkey_lock_info *info_out,
                                              struct latchkey_queued_waiter **waiters_out,
                                              size_t *count_out,
                                              uint64_t *total_out,
                                              struct latchkey_error **err_out);

/**
 * Frees an array from latchkey_client_inspect_queue, given with its count.
 * NULL is ignored.
 *
 * Threads: any thread, once. Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live array from latchkey_client_inspect_queue, or `count` is not its
 * length; nothing is freed); LATCHKEY_PANIC.
 *
 * # Safety
 * `waiters` is NULL or an array from latchkey_client_inspect_queue, not
 * yet freed, and `count` its length.
 */
latchkey_status latchkey_queued_waiters_free(struct latchkey_queued_waiter *waiters, size_t count);

/**
 * Administrative unlock: deletes the lock `name` whoever holds it and
 * wakes its waiters. The holder finds out at its next renewal (its lease is
 * reported lost). `*deleted_out` tells whether a lock was deleted.
 *
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, bad
 * `name`); LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `deleted_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_client_force_unlock(const struct latchkey_client *client,
                                             const char *name,
                                             bool *deleted_out,
                                             struct latchkey_error **err_out);

/**
 * Writes `value` (`value_len` bytes; NULL is fine when 0) to the Redis
 * resource `resource` only if `fencing_token` is above the highest token
 * the resource has accepted, so a holder that was paused past its lease
 * (and has an older token) is refused. An equal token is accepted only
 * if the previous write also came through this function with it (a
 * writer with only a token cannot prove it is the same hold); a holder
 * that writes several times uses latchkey_guard_fenced_write. Tokens
 * compare exactly over the whole uint64_t range. `*written_out` tells whether
 * it was written, `*highest_token_out` the highest token accepted so far.
 *
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK (also when refused: see `*written_out`);
 * LATCHKEY_INVALID_ARGUMENT (NULL argument, bad `resource`, token 0);
 * LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM
 * (Redlock: too few masters answered); LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `resource` is NULL or a
 * NUL-terminated string; `value` points to `value_len` readable bytes;
 * the out pointers are NULL or writable.
 */
latchkey_status latchkey_client_fenced_write(const struct latchkey_client *client,
                                             const char *resource,
                                             uint64_t fencing_token,
                                             const uint8_t *value,
                                             size_t value_len,
                                             bool *written_out,
                                             uint64_t *highest_token_out,
                                             struct latchkey_error **err_out);

/**
 * Reads a resource written by latchkey_client_fenced_write. If it exists,
 * `*found_out` is true, `*fencing_token_out` is the token that wrote it and
 * `*value_out`/`*value_len_out` a copy of the value; otherwise `*found_out`
 * is false, the token 0 and the value NULL with length 0.
 *
 * Ownership: free `*value_out` with latchkey_bytes_free(*value_out,
 * *value_len_out). An empty value is returned as NULL.
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, bad
 * `resource`); LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_NO_QUORUM (Redlock: too few masters answered); LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `resource` is NULL or a
 * NUL-terminated string; the out pointers are NULL or writable.
 */
latchkey_status latchkey_client_fenced_read(const struct latchkey_client *client,
                                            const char *resource,
                                            bool *found_out,
                                            uint64_t *fencing_token_out,
                                            uint8_t **value_out,
                                            size_t *value_len_out,
                                            struct latchkey_error **err_out);

/**
 * Frees a buffer returned by latchkey_client_fenced_read (or the election
 * calls), given with the
 * length returned with it. NULL is ignored.
 *
 * Threads: any thread, once. Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live buffer from latchkey_client_fenced_read, or `len` is not its
 * length; nothing is freed); LATCHKEY_PANIC.
 *
 * # Safety
 * `bytes` is NULL or a buffer from latchkey_client_fenced_read, not yet
 * freed, and `len` its length.
 */
latchkey_status latchkey_bytes_free(uint8_t *bytes, size_t len);

/**
 * Makes an options object with every option unset.
 *
 * Ownership: on success `*options_out` is new; free it with
 * latchkey_lock_options_free (any time after latchkey_lock_new).
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options_out` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_lock_options_new(struct latchkey_lock_options **options_out,
                                          struct latchkey_error **err_out);

/**
 * Frees an options object. NULL is ignored. Locks made from it keep their
 * options (and their callback).
 *
 * Threads: any thread, once. Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live options object: see "Handles" at the top; nothing is freed);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or from latchkey_lock_options_new, not yet freed.
 */
latchkey_status latchkey_lock_options_free(struct latchkey_lock_options *options);

/**
 * Sets the lease length in milliseconds (10 ms to 30 days; checked by
 * latchkey_lock_new). With auto-renew the lease is renewed every ttl/3;
 * without it the lock is gone after ttl.
 *
 * Threads: see latchkey_lock_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_lock_options_set_ttl_ms(struct latchkey_lock_options *options,
                                                 uint64_t ttl_ms,
                                                 struct latchkey_error **err_out);

/**
 * Sets whether the client's renewal thread keeps the lease alive while it
 * is held (default true).
 *
 * Threads: see latchkey_lock_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_lock_options_set_auto_renew(struct latchkey_lock_options *options,
                                                     bool auto_renew,
                                                     struct latchkey_error **err_out);

/**
 * Sets whether one lock handle may acquire again while it holds the lock
 * (default false). Each acquire needs its own release.
 *
 * Threads: see latchkey_lock_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_lock_options_set_reentrant(struct latchkey_lock_options *options,
                                                    bool reentrant,
                                                    struct latchkey_error **err_out);

/**
 * Sets whether the lock is fair (default false): first come, first served
 * across processes and languages; no fair caller, not even a try, takes a
 * free lock while a waiter that queued before it waits. A waiter that died
 * holds the ones behind it up for at most about 20 s. Not with
 * reentrant, not on Redlock: latchkey_lock_new refuses both with
 * LATCHKEY_INVALID_ARGUMENT. See the README's "Fair locks".
 *
 * Threads: see latchkey_lock_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_lock_options_set_fair(struct latchkey_lock_options *options,
                                               bool fair,
                                               struct latchkey_error **err_out);

/**
 * Sets the upper bound, in milliseconds, of the random pause before
 * retrying when a holder's lease ran out (0 to 10000, default 5; checked by
 * latchkey_lock_new). It keeps many waiters from retrying at once.
 *
 * Threads: see latchkey_lock_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_lock_options_set_retry_jitter_ms(struct latchkey_lock_options *options,
                                                          uint64_t jitter_ms,
                                                          struct latchkey_error **err_out);

/**
 * Sets how often, in milliseconds, the renewal thread renews the lease
 * (default a third of the ttl; must be above 0 and below the ttl, checked
 * by latchkey_lock_new).
 *
 * Threads: see latchkey_lock_options. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread.
 */
latchkey_status latchkey_lock_options_set_renew_every_ms(struct latchkey_lock_options *options,
                                                         uint64_t period_ms,
                                                         struct latchkey_error **err_out);

/**
 * Sets the callback run when an auto-renewed lease of a lock made with
 * these options is lost (see latchkey_lost_callback), replacing any
 * earlier one; a NULL `callback` removes it (`user` and `user_free` are
 * then ignored). Locks already made keep the callback they were made with.
 *
 * Ownership: on success the library keeps `user` and calls
 * `user_free(user)` (if not NULL) exactly once when no callback can run
 * any more: after these options, every lock made from them and every guard
 * of those locks are freed. That call may come from any thread, including
 * the renewal thread. A replaced or removed callback's `user_free` follows
 * the same rule, so it may run during this call. On failure `user` is not
 * taken.
 * Threads: see latchkey_lock_options; `user` must be usable from any
 * thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`options` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `options` is NULL or a live options object not used by another thread;
 * `callback` and `user_free` are NULL or functions callable from any
 * thread.
 */
latchkey_status latchkey_lock_options_set_on_lost(struct latchkey_lock_options *options,
                                                  latchkey_lost_callback callback,
                                                  void *user,
                                                  latchkey_user_free user_free,
                                                  struct latchkey_error **err_out);

/**
 * Makes a handle for the lock `name` on `client`, with `options` (NULL for
 * the defaults). Nothing is sent to Redis yet.
 *
 * Ownership: on success `*lock_out` is new; free it with
 * latchkey_lock_free. It keeps what it needs of `client` and `options`:
 * both may be freed before it.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `name` or
 * `lock_out`; `name` empty, longer than 4096 bytes or not UTF-8; an option
 * out of range, such as a ttl of 0); LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `options` is NULL or a live options object; `lock_out` and
 * `err_out` are NULL or writable.
 */
latchkey_status latchkey_lock_new(const struct latchkey_client *client,
                                  const char *name,
                                  const struct latchkey_lock_options *options,
                                  struct latchkey_lock **lock_out,
                                  struct latchkey_error **err_out);

/**
 * Frees a lock handle. NULL is ignored. Guards acquired through it stay
 * valid.
 *
 * Threads: any thread, once, when no other call uses this handle.
 * Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live lock: see "Handles" at the top; nothing is freed);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `lock` is NULL or from latchkey_lock_new, not yet freed.
 */
latchkey_status latchkey_lock_free(struct latchkey_lock *lock);

/**
 * The lock's name.
 *
 * Ownership: `*name_out` belongs to the lock; valid until
 * latchkey_lock_free.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `lock` is NULL or a live lock; `name_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_lock_name(const struct latchkey_lock *lock,
                                   const char **name_out,
                                   struct latchkey_error **err_out);

/**
 * Acquires the lock, waiting without polling (woken by the holder's
 * release) for at most `timeout_ms` milliseconds: 0 makes one attempt
 * (LATCHKEY_TIMEOUT if the lock is held, or was just released to a waiter
 * that is taking it over), a negative value waits for ever. If `cancel` is
 * not NULL, triggering it from another thread ends the wait with
 * LATCHKEY_CANCELLED (at once if it is already triggered).
 *
 * Ownership: on success `*guard_out` is a new guard; release it with
 * latchkey_guard_release and free it with latchkey_guard_free (which
 * releases it first if that was not done).
 * Threads: any thread; any number of threads may acquire through one
 * handle at once.
 * Blocks: until acquired, the timeout, cancellation, or a Redis failure.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (still held by another owner at
 * the deadline, or too few replicas confirmed it); LATCHKEY_CANCELLED;
 * LATCHKEY_CLOSED (the client was closed, before or during the wait);
 * LATCHKEY_CONNECTION (Redis unreachable, or no answer within the command
 * timeout, through the deadline), LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_NO_QUORUM (Redlock: too few masters answered);
 * LATCHKEY_INVALID_ARGUMENT (NULL `lock` or `guard_out`, the URL's
 * database does not exist); LATCHKEY_PANIC.
 *
 * # Safety
 * `lock` is NULL or a live lock; `cancel` is NULL or a live cancel handle
 * not freed during the call; `guard_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_lock_acquire(const struct latchkey_lock *lock,
                                      int64_t timeout_ms,
                                      const struct latchkey_cancel *cancel,
                                      struct latchkey_guard **guard_out,
                                      struct latchkey_error **err_out);

/**
 * One attempt, no waiting, that may also take the lock while it is being
 * handed over to a woken waiter (unlike latchkey_lock_acquire with a
 * timeout of 0): LATCHKEY_TIMEOUT if someone else holds it.
 *
 * Ownership: as latchkey_lock_acquire.
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (held by another owner);
 * LATCHKEY_CLOSED (the client was closed);
 * LATCHKEY_CONNECTION (Redis unreachable or no answer within the command
 * timeout), LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM (Redlock:
 * too few masters answered); LATCHKEY_INVALID_ARGUMENT (NULL `lock` or
 * `guard_out`, the URL's database does not exist); LATCHKEY_PANIC.
 *
 * # Safety
 * `lock` is NULL or a live lock; `guard_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_lock_try_acquire(const struct latchkey_lock *lock,
                                          struct latchkey_guard **guard_out,
                                          struct latchkey_error **err_out);

/**
 * Makes a handle for the semaphore `name` of `size` permits on `client`,
 * whose holds' leases have `options` (NULL for the defaults; reentrant
 * and fair are refused). Nothing is sent to Redis yet. The size is the
 * handle's: every attempt counts the permits in use against it, so
 * handles of one name should agree on it (holders above a smaller size
 * keep their permits until they release them).
 *
 * Ownership: on success `*semaphore_out` is new; free it with
 * latchkey_semaphore_free. It keeps what it needs of `client` and
 * `options`: both may be freed before it.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `name`
 * or `semaphore_out`; `name` empty, longer than 4096 bytes or not UTF-8;
 * `size` 0 or above 1000000; reentrant or fair options; an option out of
 * range; a Redlock client, on which semaphores are not sound);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `options` is NULL or a live options object; `semaphore_out` and
 * `err_out` are NULL or writable.
 */
latchkey_status latchkey_semaphore_new(const struct latchkey_client *client,
                                       const char *name,
                                       uint32_t size,
                                       const struct latchkey_lock_options *options,
                                       struct latchkey_semaphore **semaphore_out,
                                       struct latchkey_error **err_out);

/**
 * Frees a semaphore handle. NULL is ignored. Guards acquired through it
 * stay valid.
 *
 * Threads: any thread, once, when no other call uses this handle.
 * Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live semaphore: see "Handles" at the top; nothing is freed);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `semaphore` is NULL or from latchkey_semaphore_new, not yet freed.
 */
latchkey_status latchkey_semaphore_free(struct latchkey_semaphore *semaphore);

/**
 * Takes `permits` permits, waiting without polling (woken by releases)
 * for at most `timeout_ms` milliseconds: 0 makes one attempt
 * (LATCHKEY_TIMEOUT if too few are free), a negative value waits for
 * ever. If `cancel` is not NULL, triggering it from another thread ends
 * the wait with LATCHKEY_CANCELLED.
 *
 * Ownership: on success `*guard_out` is a new guard for the permits;
 * release it with latchkey_guard_release and free it with
 * latchkey_guard_free (which releases it first if that was not done).
 * Every latchkey_guard_* call works on it as on a lock's guard.
 * Threads: any thread; any number at once.
 * Blocks: until taken, the timeout, cancellation, or a Redis failure.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (too few permits free at the
 * deadline, or too few replicas confirmed them); LATCHKEY_CANCELLED;
 * LATCHKEY_CLOSED (the client was closed, before or during the wait);
 * LATCHKEY_CONNECTION (Redis unreachable, or no answer within the command
 * timeout, through the deadline), LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_INVALID_ARGUMENT (NULL `semaphore` or `guard_out`; `permits` 0
 * or above the size); LATCHKEY_PANIC.
 *
 * # Safety
 * `semaphore` is NULL or a live semaphore; `cancel` is NULL or a live
 * cancel handle not freed during the call; `guard_out` and `err_out` are
 * NULL or writable.
 */
latchkey_status latchkey_semaphore_acquire(const struct latchkey_semaphore *semaphore,
                                           uint32_t permits,
                                           int64_t timeout_ms,
                                           const struct latchkey_cancel *cancel,
                                           struct latchkey_guard **guard_out,
                                           struct latchkey_error **err_out);

/**
 * One attempt to take `permits` permits, no waiting: LATCHKEY_TIMEOUT if
 * too few are free.
 *
 * Ownership: as latchkey_semaphore_acquire.
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (too few permits free);
 * LATCHKEY_CLOSED (the client was closed); LATCHKEY_CONNECTION (Redis
 * unreachable or no answer within the command timeout), LATCHKEY_SERVER,
 * LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (as latchkey_semaphore_acquire);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `semaphore` is NULL or a live semaphore; `guard_out` and `err_out` are
 * NULL or writable.
 */
latchkey_status latchkey_semaphore_try_acquire(const struct latchkey_semaphore *semaphore,
                                               uint32_t permits,
                                               struct latchkey_guard **guard_out,
                                               struct latchkey_error **err_out);

/**
 * The permits free now, as this handle counts them (its size less the
 * permits in use; 0 when more are in use).
 *
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_CONNECTION, LATCHKEY_SERVER,
 * LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `semaphore` is NULL or a live semaphore; `available_out` and `err_out`
 * are NULL or writable.
 */
latchkey_status latchkey_semaphore_available(const struct latchkey_semaphore *semaphore,
                                             uint32_t *available_out,
                                             struct latchkey_error **err_out);

/**
 * Takes every permit away from whoever holds it and wakes the waiters;
 * `*released_out` says whether any was held. The holders find their
 * leases lost at their next renewal. For operators.
 *
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_CONNECTION, LATCHKEY_SERVER,
 * LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `semaphore` is NULL or a live semaphore; `released_out` and `err_out`
 * are NULL or writable.
 */
latchkey_status latchkey_semaphore_force_release_all(const struct latchkey_semaphore *semaphore,
                                                     bool *released_out,
                                                     struct latchkey_error **err_out);

/**
 * Makes a handle for the election `name` on `client`; the leaders' leases
 * have `options` (NULL for the defaults; reentrant is refused). Nothing
 * is sent to Redis yet.
 *
 * Ownership: on success `*election_out` is new; free it with
 * latchkey_election_free. It keeps what it needs of `client` and
 * `options`: both may be freed before it.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `name`
 * or `election_out`; `name` empty, longer than 4096 bytes or not UTF-8;
 * reentrant options, an option out of range; a Redlock client, whose
 * masters cannot hold one announcement); LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `options` is NULL or a live options object; `election_out` and
 * `err_out` are NULL or writable.
 */
latchkey_status latchkey_election_new(const struct latchkey_client *client,
                                      const char *name,
                                      const struct latchkey_lock_options *options,
                                      struct latchkey_election **election_out,
                                      struct latchkey_error **err_out);

/**
 * Frees an election handle. NULL is ignored. Leaderships won through it
 * stay valid.
 *
 * Threads: any thread, once, when no other call uses this handle.
 * Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live election: see "Handles" at the top; nothing is freed);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `election` is NULL or from latchkey_election_new, not yet freed.
 */
latchkey_status latchkey_election_free(struct latchkey_election *election);

/**
 * Campaigns: blocks until this candidate leads and has announced `value`
 * (`value_len` bytes, at most 65536; NULL with length 0 for none), waiting
 * without polling for at most `timeout_ms` milliseconds (0: one attempt;
 * negative: for ever). If `cancel` is not NULL, triggering it ends the
 * wait with LATCHKEY_CANCELLED.
 *
 * Ownership: on success `*guard_out` is the leadership: its fencing token
 * is the term (latchkey_guard_fencing_token); check it before each piece
 * of a leader's work (latchkey_guard_check); releasing it resigns
 * (latchkey_guard_release; latchkey_guard_free releases it first if that
 * was not done), and the next candidate leads at once.
 * Threads: any thread. Blocks: until elected, the timeout, cancellation,
 * or a Redis failure.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (another leader throughout, or
 * too few replicas confirmed); LATCHKEY_CANCELLED; LATCHKEY_CLOSED;
 * LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_INVALID_ARGUMENT (NULL `election` or `guard_out`, NULL `value`
 * with a length, a value over 65536 bytes); LATCHKEY_PANIC.
 *
 * # Safety
 * `election` is NULL or a live election; `value` is NULL or points to
 * `value_len` readable bytes; `cancel` is NULL or a live cancel handle
 * not freed during the call; `guard_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_election_campaign(const struct latchkey_election *election,
                                           const uint8_t *value,
                                           size_t value_len,
                                           int64_t timeout_ms,
                                           const struct latchkey_cancel *cancel,
                                           struct latchkey_guard **guard_out,
                                           struct latchkey_error **err_out);

/**
 * Who leads now. If someone does, `*found_out` is true, `*term_out` its
 * term and `*value_out`/`*value_len_out` a copy of its value; otherwise
 * `*found_out` is false, the term 0 and the value NULL with length 0.
 *
 * Ownership: free `*value_out` with latchkey_bytes_free(*value_out,
 * *value_len_out). An empty value is returned as NULL.
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_CONNECTION, LATCHKEY_SERVER,
 * LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `election` is NULL or a live election; the out pointers are NULL or
 * writable.
 */
latchkey_status latchkey_election_leader(const struct latchkey_election *election,
                                         bool *found_out,
                                         uint64_t *term_out,
                                         uint8_t **value_out,
                                         size_t *value_len_out,
                                         struct latchkey_error **err_out);

/**
 * Waits until the leader differs from the one whose term is `known_term`
 * (0: nobody leads), then reports the new one as latchkey_election_leader
 * does (`*found_out` false: nobody leads now). Woken by pub/sub when a
 * leader is announced or resigns, and by a leader's lease end when it
 * dies. Waits at most `timeout_ms` milliseconds (negative: for ever).
 *
 * Ownership: as latchkey_election_leader.
 * Threads: any thread. Blocks: until a change, the timeout,
 * cancellation, or a Redis failure.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (no change within the timeout);
 * LATCHKEY_CANCELLED; LATCHKEY_CLOSED; LATCHKEY_CONNECTION,
 * LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_INVALID_ARGUMENT (NULL
 * argument); LATCHKEY_PANIC.
 *
 * # Safety
 * `election` is NULL or a live election; `cancel` is NULL or a live
 * cancel handle not freed during the call; the out pointers are NULL or
 * writable.
 */
latchkey_status latchkey_election_observe(const struct latchkey_election *election,
                                          uint64_t known_term,
                                          int64_t timeout_ms,
                                          const struct latchkey_cancel *cancel,
                                          bool *found_out,
                                          uint64_t *term_out,
                                          uint8_t **value_out,
                                          size_t *value_len_out,
                                          struct latchkey_error **err_out);

/**
 * Makes a multi-lock over the `count` names in `names` (duplicates count
 * once), each lock with `options` (NULL for the defaults; reentrant is
 * refused). Nothing is sent to Redis yet.
 *
 * Ownership: on success `*multi_out` is new; free it with
 * latchkey_multi_lock_free. The names and options are only read during
 * the call.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `names`
 * or `multi_out`; 0 or more than 1024 names; a NULL, empty, non-UTF-8 or
 * too long name; reentrant options, an option out of range);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `names` is NULL or points to `count`
 * pointers, each NULL or a NUL-terminated string; `options` is NULL or a
 * live options object; `multi_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_multi_lock_new(const struct latchkey_client *client,
                                        const char *const *names,
                                        size_t count,
                                        const struct latchkey_lock_options *options,
                                        struct latchkey_multi_lock **multi_out,
                                        struct latchkey_error **err_out);

/**
 * Frees a multi-lock. NULL is ignored. Guards acquired through it stay
 * valid.
 *
 * Threads: any thread, once, when no other call uses this handle.
 * Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live multi-lock; nothing is freed); LATCHKEY_PANIC.
 *
 * # Safety
 * `multi` is NULL or from latchkey_multi_lock_new, not yet freed.
 */
latchkey_status latchkey_multi_lock_free(struct latchkey_multi_lock *multi);

/**
 * Takes every lock, waiting without polling for at most `timeout_ms`
 * milliseconds in all (0: one attempt per lock; negative: for ever). If
 * `cancel` is not NULL, triggering it ends the wait with
 * LATCHKEY_CANCELLED. Whatever the failure, no lock stays held.
 *
 * Ownership: on success `*guard_out` is new; release it with
 * latchkey_multi_guard_release and free it with latchkey_multi_guard_free
 * (which releases it first if that was not done).
 * Threads: any thread. Blocks: until all are held, the timeout,
 * cancellation, or a Redis failure.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (a lock stayed held by another
 * owner); LATCHKEY_CANCELLED; LATCHKEY_CLOSED; LATCHKEY_CONNECTION,
 * LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM (Redlock);
 * LATCHKEY_INVALID_ARGUMENT (NULL `multi` or `guard_out`); LATCHKEY_PANIC.
 *
 * # Safety
 * `multi` is NULL or a live multi-lock; `cancel` is NULL or a live cancel
 * handle not freed during the call; `guard_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_multi_lock_acquire(const struct latchkey_multi_lock *multi,
                                            int64_t timeout_ms,
                                            const struct latchkey_cancel *cancel,
                                            struct latchkey_multi_guard **guard_out,
                                            struct latchkey_error **err_out);

/**
 * One attempt per lock, no waiting: LATCHKEY_TIMEOUT (holding none) if any
 * is held by someone else.
 *
 * Ownership: as latchkey_multi_lock_acquire.
 * Threads: any thread. Blocks: for one Redis round trip per lock.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT; LATCHKEY_CLOSED;
 * LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH; LATCHKEY_NO_QUORUM
 * (Redlock); LATCHKEY_INVALID_ARGUMENT (NULL argument); LATCHKEY_PANIC.
 *
 * # Safety
 * `multi` is NULL or a live multi-lock; `guard_out` and `err_out` are NULL
 * or writable.
 */
latchkey_status latchkey_multi_lock_try_acquire(const struct latchkey_multi_lock *multi,
                                                struct latchkey_multi_guard **guard_out,
                                                struct latchkey_error **err_out);

/**
 * How many locks the guard holds (the distinct names).
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live multi-guard; `count_out` and `err_out` are
 * NULL or writable.
 */
latchkey_status latchkey_multi_guard_count(const struct latchkey_multi_guard *guard,
                                           size_t *count_out,
                                           struct latchkey_error **err_out);

/**
 * The fencing token of lock number `index` (0 to count - 1), in the
 * order of the names' bytes; readable after release, until free.
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument, `index`
 * out of range); LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live multi-guard; `token_out` and `err_out` are
 * NULL or writable.
 */
latchkey_status latchkey_multi_guard_fencing_token(const struct latchkey_multi_guard *guard,
                                                   size_t index,
                                                   uint64_t *token_out,
                                                   struct latchkey_error **err_out);

/**
 * Whether any lease is lost (true also once released).
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live multi-guard; `lost_out` and `err_out` are
 * NULL or writable.
 */
latchkey_status latchkey_multi_guard_lost(const struct latchkey_multi_guard *guard,
                                          bool *lost_out,
                                          struct latchkey_error **err_out);

/**
 * How many milliseconds every lease is certainly still held (the least
 * of them, on this machine's monotonic clock); 0 once any is lost or the
 * guard released.
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live multi-guard; `remaining_ms_out` and `err_out`
 * are NULL or writable.
 */
latchkey_status latchkey_multi_guard_remaining_ms(const struct latchkey_multi_guard *guard,
                                                  uint64_t *remaining_ms_out,
                                                  struct latchkey_error **err_out);

/**
 * LATCHKEY_OK while every lease is held; LATCHKEY_LOST once any is lost
 * (the message names the lock); LATCHKEY_NOT_HELD once released or
 * ended by a close.
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_LOST; LATCHKEY_NOT_HELD;
 * LATCHKEY_INVALID_ARGUMENT (`guard` NULL or not live); LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live multi-guard; `err_out` is NULL or writable.
 */
latchkey_status latchkey_multi_guard_check(const struct latchkey_multi_guard *guard,
                                           struct latchkey_error **err_out);

/**
 * Releases every lock, the last taken first. LATCHKEY_NOT_HELD if a lease
 * had been lost (every other lock is released all the same) or the guard
 * was already released. After any outcome the guard counts as released.
 *
 * Threads: any thread. Blocks: for one Redis round trip per lock.
 * Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD; LATCHKEY_CONNECTION,
 * LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis failed: those
 * locks expire at the end of their ttl); LATCHKEY_INVALID_ARGUMENT
 * (`guard` NULL or not live); LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live multi-guard; `err_out` is NULL or writable.
 */
latchkey_status latchkey_multi_guard_release(struct latchkey_multi_guard *guard,
                                             struct latchkey_error **err_out);

/**
 * Frees a multi-guard. NULL is ignored. If it was not released, every
 * lock is released first, best effort.
 *
 * Threads: any thread, once, as the last call on this guard.
 * Blocks: for one Redis round trip per lock if it was not released.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live multi-guard; nothing is freed); LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or from a multi-lock acquire, not yet freed.
 */
latchkey_status latchkey_multi_guard_free(struct latchkey_multi_guard *guard);

/**
 * Makes a handle for the read-write lock `name` on `client`; every
 * hold's lease has `options` (NULL for the defaults; reentrant and fair
 * are refused). Nothing is sent to Redis yet.
 *
 * Ownership: on success `*rwlock_out` is new; free it with
 * latchkey_rwlock_free. It keeps what it needs of `client` and `options`.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL `client`, `name`
 * or `rwlock_out`; `name` empty, longer than 4096 bytes or not UTF-8;
 * reentrant or fair options, an option out of range; a Redlock client);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `client` is NULL or a live client; `name` is NULL or a NUL-terminated
 * string; `options` is NULL or a live options object; `rwlock_out` and
 * `err_out` are NULL or writable.
 */
latchkey_status latchkey_rwlock_new(const struct latchkey_client *client,
                                    const char *name,
                                    const struct latchkey_lock_options *options,
                                    struct latchkey_rwlock **rwlock_out,
                                    struct latchkey_error **err_out);

/**
 * Frees a read-write lock handle. NULL is ignored. Guards acquired
 * through it stay valid.
 *
 * Threads: any thread, once, when no other call uses this handle.
 * Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live read-write lock; nothing is freed); LATCHKEY_PANIC.
 *
 * # Safety
 * `rwlock` is NULL or from latchkey_rwlock_new, not yet freed.
 */
latchkey_status latchkey_rwlock_free(struct latchkey_rwlock *rwlock);

/**
 * Takes a read lease, waiting without polling for at most `timeout_ms`
 * milliseconds (0: one attempt; negative: for ever) while a writer holds
 * or waits for the lock. If `cancel` is not NULL, triggering it ends the
 * wait with LATCHKEY_CANCELLED.
 *
 * Ownership: on success `*guard_out` is a new guard for the read lease;
 * release it with latchkey_guard_release, free it with
 * latchkey_guard_free.
 * Threads: any thread. Blocks: until held, the timeout, cancellation, or
 * a Redis failure.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (a writer held or waited
 * throughout, or too few replicas confirmed); LATCHKEY_CANCELLED;
 * LATCHKEY_CLOSED; LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_INVALID_ARGUMENT (NULL `rwlock` or `guard_out`);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `rwlock` is NULL or a live read-write lock; `cancel` is NULL or a live
 * cancel handle not freed during the call; `guard_out` and `err_out` are
 * NULL or writable.
 */
latchkey_status latchkey_rwlock_read(const struct latchkey_rwlock *rwlock,
                                     int64_t timeout_ms,
                                     const struct latchkey_cancel *cancel,
                                     struct latchkey_guard **guard_out,
                                     struct latchkey_error **err_out);

/**
 * Takes the lock for writing (no reader, no other writer), waiting as
 * latchkey_rwlock_read does; a waiting writer stops new readers.
 *
 * Ownership: as latchkey_rwlock_read.
 * Threads: any thread. Blocks: as latchkey_rwlock_read.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT (readers or a writer held it
 * throughout, or too few replicas confirmed); LATCHKEY_CANCELLED;
 * LATCHKEY_CLOSED; LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_INVALID_ARGUMENT (NULL `rwlock` or `guard_out`);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * As latchkey_rwlock_read.
 */
latchkey_status latchkey_rwlock_write(const struct latchkey_rwlock *rwlock,
                                      int64_t timeout_ms,
                                      const struct latchkey_cancel *cancel,
                                      struct latchkey_guard **guard_out,
                                      struct latchkey_error **err_out);

/**
 * One attempt at a read lease: LATCHKEY_TIMEOUT if a writer holds or
 * waits for the lock.
 *
 * Ownership: as latchkey_rwlock_read.
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT; LATCHKEY_CLOSED;
 * LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_INVALID_ARGUMENT (NULL argument); LATCHKEY_PANIC.
 *
 * # Safety
 * `rwlock` is NULL or a live read-write lock; `guard_out` and `err_out`
 * are NULL or writable.
 */
latchkey_status latchkey_rwlock_try_read(const struct latchkey_rwlock *rwlock,
                                         struct latchkey_guard **guard_out,
                                         struct latchkey_error **err_out);

/**
 * One attempt at the write lock: LATCHKEY_TIMEOUT if readers or a writer
 * hold it.
 *
 * Ownership: as latchkey_rwlock_read.
 * Threads: any thread. Blocks: for one Redis round trip.
 * Returns: LATCHKEY_OK; LATCHKEY_TIMEOUT; LATCHKEY_CLOSED;
 * LATCHKEY_CONNECTION, LATCHKEY_SERVER, LATCHKEY_AUTH;
 * LATCHKEY_INVALID_ARGUMENT (NULL argument); LATCHKEY_PANIC.
 *
 * # Safety
 * As latchkey_rwlock_try_read.
 */
latchkey_status latchkey_rwlock_try_write(const struct latchkey_rwlock *rwlock,
                                          struct latchkey_guard **guard_out,
                                          struct latchkey_error **err_out);

/**
 * Turns the write hold `writer` into a read hold, atomically: no other
 * writer comes in between (waiting readers come in with it, unless a
 * writer waits too: that writer goes next). On success `*reader_out` is
 * a new guard for the read hold, and `writer` reads as released (its
 * tokens stay readable; release it no more, free it).
 *
 * Ownership: `*reader_out` as latchkey_rwlock_read's guard; `writer` is
 * still the caller's to free.
 * Threads: any thread. Blocks: for one Redis round trip (other calls on
 * `writer` wait for it).
 * Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD (the write hold was lost or
 * already released; nothing changes); LATCHKEY_TIMEOUT (wait-for-replicas:
 * too few replicas confirmed the downgrade; both holds are given back in
 * the background, and `writer` reads as released); LATCHKEY_CLOSED
 * (the client of `rwlock` was closed: nothing changes); LATCHKEY_CONNECTION,
 * LATCHKEY_SERVER, LATCHKEY_AUTH (the outcome is unknown: both holds are
 * given back in the background, and `writer` reads as released);
 * LATCHKEY_INVALID_ARGUMENT (NULL argument; `writer` is not a write hold
 * of `rwlock`: nothing changes); LATCHKEY_PANIC.
 *
 * # Safety
 * `rwlock` is NULL or a live read-write lock; `writer` is NULL or a live
 * guard; `reader_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_rwlock_downgrade(const struct latchkey_rwlock *rwlock,
                                          struct latchkey_guard *writer,
                                          struct latchkey_guard **reader_out,
                                          struct latchkey_error **err_out);

/**
 * Releases the lock. The guard stays allocated (its tokens stay readable)
 * until latchkey_guard_free; releasing it again returns LATCHKEY_NOT_HELD.
 *
 * LATCHKEY_NOT_HELD also means the lease had been lost (expired or
 * force-unlocked), so someone else may have held the lock meanwhile; the
 * lock is never deleted from under another owner. After any outcome the
 * guard counts as released.
 *
 * Threads: any thread (see latchkey_guard). Blocks: for one Redis round
 * trip.
 * Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD; LATCHKEY_CONNECTION,
 * LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis failed: the
 * lock expires at the end of its ttl); LATCHKEY_INVALID_ARGUMENT (`guard`
 * NULL or not a live guard); LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `err_out` is NULL or writable.
 */
latchkey_status latchkey_guard_release(struct latchkey_guard *guard,
                                       struct latchkey_error **err_out);

/**
 * Frees a guard. NULL is ignored. If it was not released, it is released
 * first, best effort (errors are ignored; call latchkey_guard_release to
 * see them).
 *
 * Threads: any thread, once, as the last call on this guard.
 * Blocks: for one Redis round trip if the guard was not released.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live guard: see "Handles" at the top; nothing is freed or released);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or from an acquire, not yet freed.
 */
latchkey_status latchkey_guard_free(struct latchkey_guard *guard);

/**
 * Makes the lease last at least `ttl_ms` milliseconds from now (10 ms to
 * 30 days), if it is still ours. A lease with more left keeps it (Redis
 * never shortens a lease, and neither does the guard); a longer ttl
 * becomes the lease's ttl, which auto-renewal continues with. To add time
 * to what is left, see latchkey_guard_extend_by.
 *
 * Threads: any thread (see latchkey_guard). Blocks: for one Redis round
 * trip.
 * Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD (the lease was lost or the guard
 * released; the lease is then reported lost); LATCHKEY_CONNECTION,
 * LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis failed);
 * LATCHKEY_INVALID_ARGUMENT (`guard` NULL, ttl out of range);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `err_out` is NULL or writable.
 */
latchkey_status latchkey_guard_extend(struct latchkey_guard *guard,
                                      uint64_t ttl_ms,
                                      struct latchkey_error **err_out);

/**
 * Adds `additional_ms` milliseconds to the time the lease has left (the
 * form of redis-py's `extend`), if it is still ours: afterwards
 * latchkey_guard_remaining_ms says what it said before plus
 * `additional_ms`, less the drift allowance. The new length becomes the
 * lease's ttl, which auto-renewal continues with.
 *
 * Threads: any thread (see latchkey_guard). Blocks: for one Redis round
 * trip.
 * Returns: LATCHKEY_OK; LATCHKEY_NOT_HELD (the lease was lost or the guard
 * released; the lease is then reported lost); LATCHKEY_CONNECTION,
 * LATCHKEY_SERVER, LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis failed);
 * LATCHKEY_INVALID_ARGUMENT (`guard` NULL, the lease would exceed 30
 * days); LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `err_out` is NULL or writable.
 */
latchkey_status latchkey_guard_extend_by(struct latchkey_guard *guard,
                                         uint64_t additional_ms,
                                         struct latchkey_error **err_out);

/**
 * Whether the lease is still held: LATCHKEY_OK, or LATCHKEY_LOST with the
 * reason (renewal found the lock gone or taken, or could not confirm it
 * before it ran out). Asks the local state only, not Redis.
 *
 * Threads: any thread (see latchkey_guard). Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_LOST; LATCHKEY_NOT_HELD (the guard was
 * released); LATCHKEY_INVALID_ARGUMENT (`guard` NULL); LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `err_out` is NULL or writable.
 */
latchkey_status latchkey_guard_check(const struct latchkey_guard *guard,
                                     struct latchkey_error **err_out);

/**
 * Writes whether the lease is lost (true also once the guard is released).
 *
 * Threads: any thread (see latchkey_guard). Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `lost_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_guard_lost(const struct latchkey_guard *guard,
                                    bool *lost_out,
                                    struct latchkey_error **err_out);

/**
 * Writes how many milliseconds the lease is certainly still ours, on this
 * machine's monotonic clock (ttl minus the time since the acquire or last
 * renewal was sent, minus a drift allowance); 0 once lost, expired or
 * released.
 *
 * Threads: any thread (see latchkey_guard). Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `remaining_ms_out` and `err_out` are
 * NULL or writable.
 */
latchkey_status latchkey_guard_remaining_ms(const struct latchkey_guard *guard,
                                            uint64_t *remaining_ms_out,
                                            struct latchkey_error **err_out);

/**
 * Writes the fencing token: strictly greater than every token issued
 * before for this lock name, never 0. Pass it to the resource you protect
 * (see latchkey_client_fenced_write).
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `fencing_token_out` and `err_out` are
 * NULL or writable.
 */
latchkey_status latchkey_guard_fencing_token(const struct latchkey_guard *guard,
                                             uint64_t *fencing_token_out,
                                             struct latchkey_error **err_out);

/**
 * Writes the owner token stored in Redis: 32 hex digits from the OS random
 * source (what latchkey_client_inspect reports as the holder); for a
 * semaphore's permits, their number, ':' and the 32 digits.
 *
 * Ownership: `*token_out` belongs to the guard; valid until
 * latchkey_guard_free.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `token_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_guard_owner_token(const struct latchkey_guard *guard,
                                           const char **token_out,
                                           struct latchkey_error **err_out);

/**
 * Writes the lock's name.
 *
 * Ownership: `*name_out` belongs to the guard; valid until
 * latchkey_guard_free.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `name_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_guard_name(const struct latchkey_guard *guard,
                                    const char **name_out,
                                    struct latchkey_error **err_out);

/**
 * Asks Redis whether this hold still owns the lock: `*held_out` is true
 * when it does. Unlike latchkey_guard_check (local state only), this sees
 * a force-unlock or an expiry at once. A guard that is released, lost or
 * inherited across fork() writes false without asking.
 *
 * Threads: any thread (see latchkey_guard). Blocks: for one Redis round
 * trip (Redlock: one to every master, a quorum must agree).
 * Returns: LATCHKEY_OK; LATCHKEY_CONNECTION, LATCHKEY_SERVER,
 * LATCHKEY_AUTH, LATCHKEY_NO_QUORUM (Redis could not tell);
 * LATCHKEY_INVALID_ARGUMENT (NULL argument); LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `held_out` and `err_out` are NULL or
 * writable.
 */
latchkey_status latchkey_guard_confirm(const struct latchkey_guard *guard,
                                       bool *held_out,
                                       struct latchkey_error **err_out);

/**
 * Writes `value` (`value_len` bytes; NULL is fine when 0) to the Redis
 * resource `resource`, fenced by this hold: refused when the resource has
 * accepted a higher fencing token, or an equal token from another hold;
 * accepted again for this same hold. `*written_out` tells whether it was
 * written, `*highest_token_out` the highest token accepted so far.
 *
 * Threads: any thread (see latchkey_guard). Blocks: for one Redis round
 * trip.
 * Returns: LATCHKEY_OK (also when refused: see `*written_out`);
 * LATCHKEY_NOT_HELD (the guard was released); LATCHKEY_INVALID_ARGUMENT
 * (NULL argument, bad `resource`); LATCHKEY_CONNECTION, LATCHKEY_SERVER,
 * LATCHKEY_AUTH, LATCHKEY_NO_QUORUM; LATCHKEY_PANIC.
 *
 * # Safety
 * `guard` is NULL or a live guard; `resource` is NULL or a NUL-terminated
 * string; `value` points to `value_len` readable bytes; the out pointers
 * are NULL or writable.
 */
latchkey_status latchkey_guard_fenced_write(const struct latchkey_guard *guard,
                                            const char *resource,
                                            const uint8_t *value,
                                            size_t value_len,
                                            bool *written_out,
                                            uint64_t *highest_token_out,
                                            struct latchkey_error **err_out);

/**
 * Makes a cancel handle that is not triggered.
 *
 * Ownership: on success `*cancel_out` is new; free it with
 * latchkey_cancel_free.
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`cancel_out` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `cancel_out` and `err_out` are NULL or writable.
 */
latchkey_status latchkey_cancel_new(struct latchkey_cancel **cancel_out,
                                    struct latchkey_error **err_out);

/**
 * Frees a cancel handle. NULL is ignored.
 *
 * Threads: any thread, once, when no acquire uses it any more.
 * Blocks: no.
 * Returns: LATCHKEY_OK (also for NULL); LATCHKEY_INVALID_ARGUMENT (not a
 * live cancel handle: see "Handles" at the top; nothing is freed);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `cancel` is NULL or from latchkey_cancel_new, not yet freed.
 */
latchkey_status latchkey_cancel_free(struct latchkey_cancel *cancel);

/**
 * Triggers the handle: wakes every acquire waiting with it.
 *
 * Threads: any thread. Blocks: no (takes a short internal lock; not
 * async-signal-safe, so call it from a thread rather than a signal handler).
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`cancel` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `cancel` is NULL or a live cancel handle; `err_out` is NULL or writable.
 */
latchkey_status latchkey_cancel_trigger(struct latchkey_cancel *cancel,
                                        struct latchkey_error **err_out);

/**
 * Makes a triggered handle usable again.
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (`cancel` NULL);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `cancel` is NULL or a live cancel handle; `err_out` is NULL or writable.
 */
latchkey_status latchkey_cancel_reset(struct latchkey_cancel *cancel,
                                      struct latchkey_error **err_out);

/**
 * Writes whether the handle is triggered (since its last reset).
 *
 * Threads: any thread. Blocks: no.
 * Returns: LATCHKEY_OK; LATCHKEY_INVALID_ARGUMENT (NULL argument);
 * LATCHKEY_PANIC.
 *
 * # Safety
 * `cancel` is NULL or a live cancel handle; `triggered_out` and `err_out`
 * are NULL or writable.
 */
latchkey_status latchkey_cancel_is_triggered(const struct latchkey_cancel *cancel,
                                             bool *triggered_out,
                                             struct latchkey_error **err_out);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* LATCHKEY_H */
