// What the cgo boundary costs the Go binding's uncontended cycle, measured
// in one process, interleaved (bench/ffi/run.sh runs it):
//
//	binding  Mutex.Lock + Mutex.Unlock (bindings/go)
//	cgo      the same C calls (acquire; release + free) made directly
//	c-loop   the cycle run n times by C inside one cgo call: the process's
//	         own floor, with no Go between the round trips
//	noop     one cgo call that does nothing (latchkey_version)
//
// usage: ffi-cost URL [CYCLES_PER_BATCH [ROUNDS]]; prints one JSON line per
// variant (median over ROUNDS of the batch means, microseconds).
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../../../include -I${SRCDIR}/..
#include <stdlib.h>
#include "cycles.h"

static int acquire_one(const latchkey_lock *lock, latchkey_guard **guard) {
	return latchkey_lock_acquire(lock, -1, NULL, guard, NULL);
}
static int release_free(latchkey_guard *guard) {
	int status = latchkey_guard_release(guard, NULL);
	latchkey_guard_free(guard);
	return status;
}
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"
	"unsafe"

	"latchkey"
)

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "ffi-cost:", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ffi-cost URL [CYCLES_PER_BATCH [ROUNDS]]")
		os.Exit(2)
	}
	url, n, rounds := os.Args[1], 200, 15
	if len(os.Args) > 2 {
		v, err := strconv.Atoi(os.Args[2])
		check(err)
		n = v
	}
	if len(os.Args) > 3 {
		v, err := strconv.Atoi(os.Args[3])
		check(err)
		rounds = v
	}
	client, err := latchkey.Open(url)
	check(err)
	defer client.Close()
	m, err := client.NewMutex("bench:ffi-go")
	check(err)
	ctx := context.Background()

	curl, cname := C.CString(url), C.CString("bench:ffi-go-c")
	defer C.free(unsafe.Pointer(curl))
	defer C.free(unsafe.Pointer(cname))
	var cc *C.latchkey_client
	var lock *C.latchkey_lock
	if C.latchkey_client_open(curl, nil, &cc, nil) != C.LATCHKEY_OK ||
		C.latchkey_lock_new(cc, cname, nil, &lock, nil) != C.LATCHKEY_OK {
		check(fmt.Errorf("could not open %s through the C ABI", url))
	}
	defer C.latchkey_client_free(cc)
	defer C.latchkey_lock_free(lock)

	variants := []string{"binding", "cgo", "c-loop", "noop"}
	batch := func(v string) float64 {
		start := time.Now()
		calls := n
		switch v {
		case "binding":
			for i := 0; i < n; i++ {
				check(m.Lock(ctx))
				check(m.Unlock())
			}
		case "cgo":
			for i := 0; i < n; i++ {
				var g *C.latchkey_guard
				if C.acquire_one(lock, &g) != C.LATCHKEY_OK || C.release_free(g) != C.LATCHKEY_OK {
					check(fmt.Errorf("cycle through cgo failed"))
				}
			}
		case "c-loop":
			if C.lk_ffi_cycles(lock, C.int(n)) != 0 {
				check(fmt.Errorf("cycle in C failed"))
			}
		case "noop":
			calls = 100 * n
			for i := 0; i < calls; i++ {
				_ = C.latchkey_version()
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(calls) / 1000
	}
	for _, v := range variants {
		batch(v) // warm-up
	}
	samples := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for i := range variants {
			v := variants[(i+r)%len(variants)] // rotating order
			samples[v] = append(samples[v], batch(v))
		}
	}
	median := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	floor := median(samples["c-loop"])
	for _, v := range variants {
		row := map[string]any{
			"scenario": "ffi-cost", "impl": "latchkey-go", "variant": v,
			"median_us": float64(int(median(samples[v])*100+0.5)) / 100,
			"rounds":    rounds, "cycles_per_batch": n,
		}
		if v != "noop" {
			row["x_c_loop"] = float64(int(median(samples[v])/floor*1000+0.5)) / 1000
		}
		out, _ := json.Marshal(row)
		fmt.Println(string(out))
	}
}
