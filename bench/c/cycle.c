/*
 * The uncontended acquire+release cycle through the C ABI, to set beside
 * the Rust figure (bench/run.sh runs both against the same server): the C
 * layer should add nothing measurable to a cycle of two Redis round trips.
 *
 * usage: cycle URL [CYCLES]
 * Prints one JSON line: {"scenario":"cycle","impl":"latchkey-c",...}. The
 * figures are over BATCHES batches of CYCLES / BATCHES cycles (CYCLES:
 * 10,000 unless given), after one warm-up batch: median_us is the median of
 * the batch means, p90_us their 90th percentile. With BENCH_SAMPLES=1 the
 * line also has every batch mean, in order (batch_means_us), for
 * bench/rows.py to pool the interleaved rounds of bench/run.sh.
 * Build: make -C ffi-tests bench-c (target/bench-c/cycle).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "latchkey.h"

#define BATCHES 20
#define DEFAULT_CYCLES 10000

static int cycles_per_batch = DEFAULT_CYCLES / BATCHES;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted values, nearest rank (as the Rust bench does). */
static double quantile(const double *sorted, int n, double q) {
    return sorted[(int)((n - 1) * q + 0.5)];
}

static int fail(const char *what, latchkey_error *err) {
    fprintf(stderr, "cycle: %s: %s: %s\n", what, latchkey_status_name(latchkey_error_status(err)),
            latchkey_error_message(err));
    latchkey_error_free(err);
    return 1;
}

/* One batch; returns the mean cycle in microseconds, or a negative value. */
static double batch(latchkey_lock *lock, latchkey_error **err) {
    double start = now_us();
    for (int i = 0; i < cycles_per_batch; i++) {
        latchkey_guard *guard = NULL;
        if (latchkey_lock_acquire(lock, -1, NULL, &guard, err) != LATCHKEY_OK) return -1;
        latchkey_status status = latchkey_guard_release(guard, err);
        latchkey_guard_free(guard);
        if (status != LATCHKEY_OK) return -1;
    }
    return (now_us() - start) / cycles_per_batch;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s URL [CYCLES]\n", argv[0]);
        return 2;
    }
    if (argc == 3) {
        long cycles = strtol(argv[2], NULL, 10);
        if (cycles <= 0) {
            fprintf(stderr, "cycle: CYCLES must be a positive number, not %s\n", argv[2]);
            return 2;
        }
        cycles_per_batch = cycles >= BATCHES ? (int)(cycles / BATCHES) : 1;
    }
    latchkey_client *client = NULL;
    latchkey_lock *lock = NULL;
    latchkey_error *err = NULL;
    double means[BATCHES];
    if (latchkey_client_open(argv[1], NULL, &client, &err) != LATCHKEY_OK) return fail("open", err);
    if (latchkey_lock_new(client, "bench:cycle-c", NULL, &lock, &err) != LATCHKEY_OK) {
        return fail("lock", err);
    }
    /* Warm-up: connections, script loading. */
    if (batch(lock, &err) < 0) return fail("warm-up", err);
    for (int b = 0; b < BATCHES; b++) {
        means[b] = batch(lock, &err);
        if (means[b] < 0) return fail("cycle", err);
    }
    double in_order[BATCHES];
    memcpy(in_order, means, sizeof means);
    qsort(means, BATCHES, sizeof means[0], compare_doubles);
    double median = quantile(means, BATCHES, 0.5), p90 = quantile(means, BATCHES, 0.9);
    printf("{\"scenario\": \"cycle\", \"impl\": \"latchkey-c\", \"median_us\": %.2f, "
           "\"p90_us\": %.2f, \"ops_per_s\": %.0f",
           median, p90, 1e6 / median);
    const char *raw = getenv("BENCH_SAMPLES");
    if (raw != NULL && strcmp(raw, "1") == 0) {
        printf(", \"batch_means_us\": [");
        for (int b = 0; b < BATCHES; b++) printf("%s%.2f", b ? ", " : "", in_order[b]);
        printf("]");
    }
    printf("}\n");
    latchkey_lock_free(lock);
    latchkey_client_free(client);
    return 0;
}
