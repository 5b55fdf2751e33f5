// The Go rows of `make bench` (bench/run.sh builds and runs this): redsync
// (v4, over go-redis v9) always, and latchkey-go when bindings/go builds
// (latchkey.go, build tag `latchkey`; bench/run.sh points the module at the
// binding). Same scenarios and JSON lines as bench/rust/main.rs.
//
//	bench-go impls                                  implementations built in
//	bench-go IMPL cycle URL CYCLES                  floor (go-redis PING) interleaved
//	bench-go IMPL cycle-redlock SCENARIO CYCLES URL...
//	bench-go IMPL handoff URL ROUNDS                waiter in another process
//	bench-go IMPL waiter URL NAME                   (internal)
//	bench-go IMPL contend URL NAME START_NS END_NS COUNTER_FILE  (internal)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sys/unix"
)

const (
	batches = 10
	ttl     = 30 * time.Second
	// How long a blocked waiter is left parked before the release (see
	// bench/rust/main.rs: SETTLE).
	settle = time.Millisecond
)

// A lock as the benchmark uses it: blocking acquire, owner-checked release.
type locker interface {
	Lock() error
	Unlock() error
}

type implementation struct {
	name string
	// "pubsub": the waiter parks until a release message (channel says
	// where); "poll": it retries at most pollMax apart.
	wait    string
	channel func(key string) string
	pollMax time.Duration
	open    func(urls []string, key string) (locker, error)
}

var impls = map[string]implementation{}

func register(i implementation) { impls[i.name] = i }

func monotonicNs() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

func quantile(sorted []float64, q float64) float64 {
	return sorted[int(math.Round(float64(len(sorted)-1)*q))]
}

func sortedCopy(v []float64) []float64 {
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	return c
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// stats: median of batch medians, p90 of all samples, batch-median spread (µs).
func stats(samplesNs []int64) map[string]any {
	us := make([]float64, len(samplesNs))
	for i, s := range samplesNs {
		us[i] = float64(s) / 1000
	}
	n := min(batches, len(us))
	size := len(us) / n
	medians := make([]float64, 0, n)
	for b := 0; b < n; b++ {
		end := (b + 1) * size
		if b+1 == n {
			end = len(us)
		}
		medians = append(medians, quantile(sortedCopy(us[b*size:end]), 0.5))
	}
	medians = sortedCopy(medians)
	sum := 0.0
	for _, u := range us {
		sum += u
	}
	return map[string]any{
		"mean_us":   round(sum/float64(len(us)), 2),
		"median_us": round(quantile(medians, 0.5), 2),
		"p90_us":    round(quantile(sortedCopy(us), 0.9), 2),
		"spread_us": []float64{round(medians[0], 2), round(medians[len(medians)-1], 2)},
		"samples":   len(us),
	}
}

func emit(scenario, impl string, samples, floor []int64, extra map[string]any) {
	row := stats(samples)
	row["scenario"] = scenario
	row["impl"] = impl
	median := row["median_us"].(float64)
	floorUs := stats(floor)["median_us"].(float64)
	row["floor_us"] = floorUs
	row["ratio"] = round(median/floorUs, 3)
	row["ops_per_s"] = round(1e6/median, 1)
	for k, v := range extra {
		row[k] = v
	}
	// Keys in a fixed, readable order.
	keys := []string{"scenario", "impl", "median_us", "p90_us", "spread_us", "mean_us", "floor_us", "ratio", "ops_per_s", "samples"}
	for k := range extra {
		keys = append(keys, k)
	}
	if os.Getenv("BENCH_SAMPLES") == "1" {
		// Every sample (µs, in the order taken), for bench/rows.py to pool
		// the interleaved rounds of bench/run.sh.
		us := make([]float64, len(samples))
		for i, s := range samples {
			us[i] = round(float64(s)/1000, 2)
		}
		row["samples_us"] = us
		keys = append(keys, "samples_us")
	}
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v, _ := json.Marshal(row[k])
		parts = append(parts, fmt.Sprintf("%q: %s", k, v))
	}
	fmt.Println("{" + strings.Join(parts, ", ") + "}")
}

func admin(url string) *goredis.Client {
	opt, err := goredis.ParseURL(url)
	check(err)
	return goredis.NewClient(opt)
}

func pingNs(c *goredis.Client) int64 {
	t := time.Now()
	check(c.Ping(context.Background()).Err())
	return time.Since(t).Nanoseconds()
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-go:", err)
		os.Exit(1)
	}
}

func lookup(name string) implementation {
	i, ok := impls[name]
	if !ok {
		check(fmt.Errorf("implementation %q is not built in", name))
	}
	return i
}

// cycle: uncontended acquire + release, interleaved with a go-redis PING.
func cycle(impl implementation, scenario string, cycles int, urls []string) {
	l, err := impl.open(urls, fmt.Sprintf("bench:%s:%s", scenario, impl.name))
	check(err)
	a := admin(urls[0])
	warmUp := cycles/20 + 20
	var floor, samples []int64
	for i := 0; i < cycles+warmUp; i++ {
		f := pingNs(a)
		t := time.Now()
		check(l.Lock())
		check(l.Unlock())
		c := time.Since(t).Nanoseconds()
		if i >= warmUp {
			floor = append(floor, f)
			samples = append(samples, c)
		}
	}
	emit(scenario, impl.name, samples, floor, map[string]any{
		"masters":      len(urls),
		"floor_source": "go-redis PING on one connection, interleaved",
	})
}

// handoff: release -> return of a Lock blocked in another process.
func handoff(impl implementation, rounds int, url string) {
	key := "bench:handoff:" + impl.name
	l, err := impl.open([]string{url}, key)
	check(err)
	a := admin(url)
	exe, err := os.Executable()
	check(err)
	cmd := exec.Command(exe, impl.name, "waiter", url, key)
	cmd.Stderr = os.Stderr
	toWaiter, err := cmd.StdinPipe()
	check(err)
	out, err := cmd.StdoutPipe()
	check(err)
	check(cmd.Start())
	fromWaiter := bufio.NewReader(out)
	readLine := func() string {
		line, err := fromWaiter.ReadString('\n')
		check(err)
		return strings.TrimSpace(line)
	}
	warmUp := rounds/10 + 5
	if impl.wait == "poll" {
		warmUp = 2
	}
	ctx := context.Background()
	var floor, samples []int64
	for r := 0; r < rounds+warmUp; r++ {
		check(l.Lock())
		_, err := fmt.Fprintln(toWaiter, "go")
		check(err)
		if readLine() != "waiting" {
			check(fmt.Errorf("waiter out of step"))
		}
		if impl.wait == "pubsub" {
			ch := impl.channel(key)
			for {
				n, err := a.PubSubNumSub(ctx, ch).Result()
				check(err)
				if n[ch] > 0 {
					break
				}
			}
			time.Sleep(settle)
		} else {
			time.Sleep(5*time.Millisecond + time.Duration(rand.Int63n(int64(impl.pollMax))))
		}
		f := pingNs(a)
		t0 := monotonicNs()
		check(l.Unlock())
		t1, err := strconv.ParseInt(readLine(), 10, 64)
		check(err)
		if r >= warmUp {
			floor = append(floor, f)
			samples = append(samples, t1-t0)
		}
	}
	check(toWaiter.Close())
	check(cmd.Wait())
	waiting := "pub/sub wake-up"
	if impl.wait == "poll" {
		waiting = fmt.Sprintf("polls, up to %v apart", impl.pollMax)
	}
	emit("handoff", impl.name, samples, floor, map[string]any{
		"waiting":      waiting,
		"floor_source": "go-redis PING from the holder just before the release",
	})
}

func waiter(impl implementation, url, key string) {
	l, err := impl.open([]string{url}, key)
	check(err)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fmt.Println("waiting")
		check(l.Lock())
		t1 := monotonicNs()
		check(l.Unlock())
		fmt.Println(t1)
	}
}

// contend: one contender of contended-4 (bench/contend.py runs four).
func contend(impl implementation, url, key string, start, end int64, counter string) {
	l, err := impl.open([]string{url}, key)
	check(err)
	if d := start - monotonicNs(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	count := 0
	for monotonicNs() < end {
		check(l.Lock())
		data, err := os.ReadFile(counter)
		check(err)
		v, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		check(os.WriteFile(counter, []byte(strconv.Itoa(v+1)), 0o644))
		check(l.Unlock())
		count++
	}
	fmt.Println(count)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	check(err)
	return n
}

func main() {
	a := os.Args[1:]
	if len(a) == 1 && a[0] == "impls" {
		for name := range impls {
			fmt.Println(name)
		}
		return
	}
	if len(a) < 2 {
		fmt.Fprintln(os.Stderr, "usage: see the comment at the top of bench/go/main.go")
		os.Exit(2)
	}
	impl, cmd, args := lookup(a[0]), a[1], a[2:]
	switch {
	case cmd == "cycle" && len(args) == 2:
		cycle(impl, "cycle", atoi(args[1]), args[:1])
	case cmd == "cycle-redlock" && len(args) >= 3:
		cycle(impl, args[0], atoi(args[1]), args[2:])
	case cmd == "handoff" && len(args) == 2:
		handoff(impl, atoi(args[1]), args[0])
	case cmd == "waiter" && len(args) == 2:
		waiter(impl, args[0], args[1])
	case cmd == "contend" && len(args) == 5:
		contend(impl, args[0], args[1], int64(atoi(args[2])), int64(atoi(args[3])), args[4])
	default:
		fmt.Fprintln(os.Stderr, "usage: see the comment at the top of bench/go/main.go")
		os.Exit(2)
	}
}
