/*
 * reports.c: the queue between the library's threads and Go.
 *
 * The lost-lease callback and the user_free callback run on library
 * threads; the lost-lease one on the client's watchdog, which also renews
 * every other lease of the client. Calling into Go from there would make
 * those renewals wait for the Go side: for a free P, for the end of a
 * stop-the-world pause, for a lock held by a goroutine. So the callbacks
 * only append a copy of the report to this queue (a short critical section
 * and a malloc), and one goroutine takes reports off it, in order (a
 * handle's user_free comes after its last lost report), in a blocking call.
 */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

struct lk_report {
	struct lk_report *next;
	int kind;
	uintptr_t user;
	char *owner_token;
	char *reason;
};

static pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cv = PTHREAD_COND_INITIALIZER;
static struct lk_report *queue_head, *queue_tail;

static char *copy_string(const char *s, int *failed) {
	if (s == NULL) return NULL;
	size_t n = strlen(s) + 1;
	char *p = malloc(n);
	if (p == NULL) {
		*failed = 1;
		return NULL;
	}
	memcpy(p, s, n);
	return p;
}

void lk_report_push(int kind, uintptr_t user, const char *owner_token, const char *reason) {
	int failed = 0;
	struct lk_report *r = calloc(1, sizeof *r);
	if (r != NULL) {
		r->kind = kind;
		r->user = user;
		r->owner_token = copy_string(owner_token, &failed);
		r->reason = copy_string(reason, &failed);
	}
	if (r == NULL || failed) {
		/* Out of memory: deliver it directly rather than lose it. */
		if (r != NULL) lk_report_free(r);
		if (kind == LK_REPORT_LOST) {
			latchkeyGoLost(user, (char *)owner_token, (char *)reason);
		} else {
			latchkeyGoUserFree(user);
		}
		return;
	}
	pthread_mutex_lock(&queue_mu);
	if (queue_tail != NULL) {
		queue_tail->next = r;
	} else {
		queue_head = r;
	}
	queue_tail = r;
	pthread_cond_signal(&queue_cv);
	pthread_mutex_unlock(&queue_mu);
}

lk_report_view lk_report_pop(void) {
	pthread_mutex_lock(&queue_mu);
	while (queue_head == NULL) {
		pthread_cond_wait(&queue_cv, &queue_mu);
	}
	struct lk_report *r = queue_head;
	queue_head = r->next;
	if (queue_head == NULL) queue_tail = NULL;
	pthread_mutex_unlock(&queue_mu);
	lk_report_view v = {r, r->kind, r->user, r->owner_token, r->reason};
	return v;
}

void lk_report_free(struct lk_report *r) {
	if (r == NULL) return;
	free(r->owner_token);
	free(r->reason);
	free(r);
}
