/*
 * helpers.h: C helpers of the Go binding (included by its cgo preambles).
 *
 * They bundle several C calls into one cgo call (each cgo call costs tens
 * of nanoseconds), return results by value (so no Go pointer is handed to
 * C on the hot paths), and queue the library's callbacks for Go
 * (reports.c).
 */
#ifndef LATCHKEY_GO_HELPERS_H
#define LATCHKEY_GO_HELPERS_H

#include <stdlib.h>
#include "latchkey.h"

/* Exported from callbacks.go. */
extern void latchkeyGoLost(uintptr_t user, char *owner_token, char *reason);
extern void latchkeyGoUserFree(uintptr_t user);

/* The report queue (reports.c): the library's callbacks only append to it;
 * a goroutine takes reports off it with lk_report_pop. */
enum { LK_REPORT_LOST = 0, LK_REPORT_USER_FREE = 1 };
struct lk_report;
typedef struct {
	struct lk_report *report; /* free with lk_report_free */
	int kind;
	uintptr_t user;
	const char *owner_token;
	const char *reason;
} lk_report_view;
void lk_report_push(int kind, uintptr_t user, const char *owner_token, const char *reason);
lk_report_view lk_report_pop(void); /* blocks until there is a report */
void lk_report_free(struct lk_report *report);

static inline void lk_on_lost(void *user, const char *name, const char *owner_token, uint64_t fencing_token,
                              const char *reason) {
	(void)name;
	(void)fencing_token;
	lk_report_push(LK_REPORT_LOST, (uintptr_t)user, owner_token, reason);
}

static inline void lk_user_free(void *user) {
	lk_report_push(LK_REPORT_USER_FREE, (uintptr_t)user, NULL, NULL);
}

typedef struct {
	latchkey_status status;
	latchkey_error *err;
} lk_result;

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	latchkey_guard *guard;
	uint64_t fencing_token;
	const char *owner_token;
} lk_acquired;

static inline void lk_fill_guard(lk_acquired *r) {
	if (latchkey_guard_fencing_token(r->guard, &r->fencing_token, NULL) != LATCHKEY_OK) {
		r->fencing_token = 0;
	}
	if (latchkey_guard_owner_token(r->guard, &r->owner_token, NULL) != LATCHKEY_OK) {
		r->owner_token = NULL;
	}
}

// Acquire, then read the new guard's tokens: one cgo call.
static inline lk_acquired lk_acquire(const latchkey_lock *lock, int64_t timeout_ms, const latchkey_cancel *cancel) {
	lk_acquired r = {0};
	r.status = latchkey_lock_acquire(lock, timeout_ms, cancel, &r.guard, &r.err);
	if (r.status == LATCHKEY_OK) lk_fill_guard(&r);
	return r;
}

// One attempt. "Held by someone else" (LATCHKEY_TIMEOUT) needs no message,
// so its error object is freed here rather than in a second cgo call.
static inline lk_acquired lk_try_acquire(const latchkey_lock *lock) {
	lk_acquired r = {0};
	r.status = latchkey_lock_try_acquire(lock, &r.guard, &r.err);
	if (r.status == LATCHKEY_OK) {
		lk_fill_guard(&r);
	} else if (r.status == LATCHKEY_TIMEOUT) {
		latchkey_error_free(r.err);
		r.err = NULL;
	}
	return r;
}

// Release, then free the guard: one cgo call.
static inline lk_result lk_release_free(latchkey_guard *guard) {
	lk_result r = {0};
	r.status = latchkey_guard_release(guard, &r.err);
	latchkey_guard_free(guard);
	return r;
}

static inline lk_result lk_extend(latchkey_guard *guard, uint64_t ttl_ms) {
	lk_result r = {0};
	r.status = latchkey_guard_extend(guard, ttl_ms, &r.err);
	return r;
}

static inline lk_result lk_extend_by(latchkey_guard *guard, uint64_t additional_ms) {
	lk_result r = {0};
	r.status = latchkey_guard_extend_by(guard, additional_ms, &r.err);
	return r;
}

static inline lk_result lk_check(const latchkey_guard *guard) {
	lk_result r = {0};
	r.status = latchkey_guard_check(guard, &r.err);
	return r;
}

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	uint64_t remaining_ms;
} lk_remaining;

static inline lk_remaining lk_guard_remaining(const latchkey_guard *guard) {
	lk_remaining r = {0};
	r.status = latchkey_guard_remaining_ms(guard, &r.remaining_ms, &r.err);
	return r;
}

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	latchkey_cancel *cancel;
} lk_cancel_made;

static inline lk_cancel_made lk_cancel_new(void) {
	lk_cancel_made r = {0};
	r.status = latchkey_cancel_new(&r.cancel, &r.err);
	return r;
}

// Lock options in one struct, so that making a lock is one cgo call.
typedef struct {
	uint64_t ttl_ms;
	uint64_t retry_jitter_ms;
	uint64_t renew_every_ms;
	uintptr_t handle;
	unsigned char set_ttl, set_auto_renew, auto_renew, set_reentrant, reentrant,
		set_retry_jitter, set_renew_every, set_fair, fair;
} lk_lock_config;

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	latchkey_lock *lock;
	// Whether the library took `handle` (it then calls lk_user_free on it
	// exactly once); if not, the caller deletes it.
	unsigned char handle_taken;
} lk_lock_made;

// The options of cfg, with the on-lost callback on cfg.handle. On failure
// (NULL returned, *status and *err set) the options are freed, which lets
// go of the handle if the library had taken it (lk_user_free runs).
static inline latchkey_lock_options *lk_options_make(lk_lock_config cfg, latchkey_status *status,
                                                     latchkey_error **err, unsigned char *handle_taken) {
	latchkey_lock_options *options = NULL;
	*status = latchkey_lock_options_new(&options, err);
	if (*status != LATCHKEY_OK) return NULL;
	if (cfg.set_ttl) *status = latchkey_lock_options_set_ttl_ms(options, cfg.ttl_ms, err);
	if (*status == LATCHKEY_OK && cfg.set_auto_renew)
		*status = latchkey_lock_options_set_auto_renew(options, cfg.auto_renew != 0, err);
	if (*status == LATCHKEY_OK && cfg.set_reentrant)
		*status = latchkey_lock_options_set_reentrant(options, cfg.reentrant != 0, err);
	if (*status == LATCHKEY_OK && cfg.set_fair)
		*status = latchkey_lock_options_set_fair(options, cfg.fair != 0, err);
	if (*status == LATCHKEY_OK && cfg.set_retry_jitter)
		*status = latchkey_lock_options_set_retry_jitter_ms(options, cfg.retry_jitter_ms, err);
	if (*status == LATCHKEY_OK && cfg.set_renew_every)
		*status = latchkey_lock_options_set_renew_every_ms(options, cfg.renew_every_ms, err);
	if (*status == LATCHKEY_OK) {
		*status = latchkey_lock_options_set_on_lost(options, lk_on_lost, (void *)cfg.handle, lk_user_free, err);
		if (*status == LATCHKEY_OK) *handle_taken = 1;
	}
	if (*status != LATCHKEY_OK) {
		latchkey_lock_options_free(options);
		return NULL;
	}
	return options;
}

static inline lk_lock_made lk_lock_new(const latchkey_client *client, const char *name, lk_lock_config cfg) {
	lk_lock_made r = {0};
	latchkey_lock_options *options = lk_options_make(cfg, &r.status, &r.err, &r.handle_taken);
	if (options == NULL) return r;
	r.status = latchkey_lock_new(client, name, options, &r.lock, &r.err);
	// The lock keeps what it needs; if it was not made, this is where the
	// library lets go of `handle` (lk_user_free runs during this call).
	latchkey_lock_options_free(options);
	return r;
}

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	latchkey_semaphore *semaphore;
	unsigned char handle_taken; // as lk_lock_made's
} lk_semaphore_made;

// A semaphore with the options of cfg (reentrant and fair are refused by
// the library): one cgo call.
static inline lk_semaphore_made lk_semaphore_new(const latchkey_client *client, const char *name, uint32_t size,
                                                 lk_lock_config cfg) {
	lk_semaphore_made r = {0};
	latchkey_lock_options *options = lk_options_make(cfg, &r.status, &r.err, &r.handle_taken);
	if (options == NULL) return r;
	r.status = latchkey_semaphore_new(client, name, size, options, &r.semaphore, &r.err);
	latchkey_lock_options_free(options);
	return r;
}

// Take permits, then read the new guard's tokens: one cgo call.
static inline lk_acquired lk_semaphore_acquire(const latchkey_semaphore *semaphore, uint32_t permits,
                                               int64_t timeout_ms, const latchkey_cancel *cancel) {
	lk_acquired r = {0};
	r.status = latchkey_semaphore_acquire(semaphore, permits, timeout_ms, cancel, &r.guard, &r.err);
	if (r.status == LATCHKEY_OK) lk_fill_guard(&r);
	return r;
}

// One attempt; "too few free" (LATCHKEY_TIMEOUT) needs no message.
static inline lk_acquired lk_semaphore_try_acquire(const latchkey_semaphore *semaphore, uint32_t permits) {
	lk_acquired r = {0};
	r.status = latchkey_semaphore_try_acquire(semaphore, permits, &r.guard, &r.err);
	if (r.status == LATCHKEY_OK) {
		lk_fill_guard(&r);
	} else if (r.status == LATCHKEY_TIMEOUT) {
		latchkey_error_free(r.err);
		r.err = NULL;
	}
	return r;
}

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	uint32_t available;
	bool released;
} lk_semaphore_state;

static inline lk_semaphore_state lk_semaphore_available(const latchkey_semaphore *semaphore) {
	lk_semaphore_state r = {0};
	r.status = latchkey_semaphore_available(semaphore, &r.available, &r.err);
	return r;
}

static inline lk_semaphore_state lk_semaphore_force_release_all(const latchkey_semaphore *semaphore) {
	lk_semaphore_state r = {0};
	r.status = latchkey_semaphore_force_release_all(semaphore, &r.released, &r.err);
	return r;
}

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	latchkey_election *election;
	unsigned char handle_taken; // as lk_lock_made's
} lk_election_made;

// An election with the options of cfg (reentrant is refused by the
// library): one cgo call.
static inline lk_election_made lk_election_new(const latchkey_client *client, const char *name, lk_lock_config cfg) {
	lk_election_made r = {0};
	latchkey_lock_options *options = lk_options_make(cfg, &r.status, &r.err, &r.handle_taken);
	if (options == NULL) return r;
	r.status = latchkey_election_new(client, name, options, &r.election, &r.err);
	latchkey_lock_options_free(options);
	return r;
}

// Campaign, then read the leadership's tokens (the fencing token is the
// term): one cgo call.
static inline lk_acquired lk_election_campaign(const latchkey_election *election, const uint8_t *value,
                                               size_t value_len, int64_t timeout_ms, const latchkey_cancel *cancel) {
	lk_acquired r = {0};
	r.status = latchkey_election_campaign(election, value, value_len, timeout_ms, cancel, &r.guard, &r.err);
	if (r.status == LATCHKEY_OK) lk_fill_guard(&r);
	return r;
}

// Who leads (found false: nobody); free value with latchkey_bytes_free.
typedef struct {
	latchkey_status status;
	latchkey_error *err;
	bool found;
	uint64_t term;
	uint8_t *value;
	size_t value_len;
} lk_leader;

static inline lk_leader lk_election_leader(const latchkey_election *election) {
	lk_leader r = {0};
	r.status = latchkey_election_leader(election, &r.found, &r.term, &r.value, &r.value_len, &r.err);
	return r;
}

static inline lk_leader lk_election_observe(const latchkey_election *election, uint64_t known_term, int64_t timeout_ms,
                                            const latchkey_cancel *cancel) {
	lk_leader r = {0};
	r.status = latchkey_election_observe(election, known_term, timeout_ms, cancel, &r.found, &r.term, &r.value,
	                                     &r.value_len, &r.err);
	return r;
}

typedef struct {
	latchkey_status status;
	latchkey_error *err;
	const char *message;
} lk_error_view;

// An error's status and message (valid until latchkey_error_free).
static inline lk_error_view lk_error_read(latchkey_error *err) {
	lk_error_view v = {0};
	v.status = latchkey_error_status(err);
	v.message = latchkey_error_message(err);
	v.err = err;
	return v;
}

#endif
