package main

// redsync v4 over go-redis v9, as its README shows: one pool per master,
// redsync.New(pools...).NewMutex(name). Defaults, except a 30 s expiry like
// every other implementation here, and unlimited tries so that a waiter
// never gives up (the default is 32 tries, 50-250 ms apart).

import (
	"fmt"
	"math"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredislib "github.com/redis/go-redis/v9"
)

type redsyncLock struct{ m *redsync.Mutex }

func (l redsyncLock) Lock() error { return l.m.Lock() }

func (l redsyncLock) Unlock() error {
	ok, err := l.m.Unlock()
	if err == nil && !ok {
		err = fmt.Errorf("redsync: unlock found the lock not ours")
	}
	return err
}

func init() {
	register(implementation{
		name:    "redsync",
		wait:    "poll",
		pollMax: 250 * time.Millisecond,
		open: func(urls []string, key string) (locker, error) {
			pools := make([]redis.Pool, 0, len(urls))
			for _, u := range urls {
				opt, err := goredislib.ParseURL(u)
				if err != nil {
					return nil, err
				}
				pools = append(pools, goredis.NewPool(goredislib.NewClient(opt)))
			}
			m := redsync.New(pools...).NewMutex(key,
				redsync.WithExpiry(30*time.Second), redsync.WithTries(math.MaxInt32))
			return redsyncLock{m}, nil
		},
	})
}
