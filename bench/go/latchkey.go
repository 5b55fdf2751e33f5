//go:build latchkey

package main

// latchkey-go: the cgo binding in bindings/go. bench/run.sh builds this file
// only when the binding is there, in a copy of this module whose go.mod
// points LATCHKEY_GO_MODULE (replaced by the binding's module path) at
// bindings/go. The binding is called through reflection on its documented
// names (Open, NewMutex, Lock(ctx), Unlock) so that the benchmark builds
// whatever the exact result lists are (an error last, or nothing).

import (
	"context"
	"fmt"
	"reflect"

	latchkey "LATCHKEY_GO_MODULE"
)

// latchkeyLibrary is set by bench/run.sh (-ldflags -X) to a checksum of
// liblatchkey.a: a new library changes the link, so go's build cache never
// hands back a binary linked with an old one.
var latchkeyLibrary string

func lastError(out []reflect.Value) error {
	if n := len(out); n > 0 && out[n-1].IsValid() && out[n-1].CanInterface() {
		if err, ok := out[n-1].Interface().(error); ok && err != nil {
			return err
		}
	}
	return nil
}

func invoke(f reflect.Value, what string, args ...any) ([]reflect.Value, error) {
	if !f.IsValid() {
		return nil, fmt.Errorf("latchkey-go: the binding has no %s", what)
	}
	in := make([]reflect.Value, len(args))
	for i, a := range args {
		in[i] = reflect.ValueOf(a)
	}
	out := f.Call(in)
	return out, lastError(out)
}

type latchkeyGo struct {
	client, mutex reflect.Value
}

func (l latchkeyGo) Lock() error {
	_, err := invoke(l.mutex.MethodByName("Lock"), "Mutex.Lock", context.Background())
	return err
}

func (l latchkeyGo) Unlock() error {
	out, err := invoke(l.mutex.MethodByName("Unlock"), "Mutex.Unlock")
	if err == nil && len(out) == 2 && out[0].Kind() == reflect.Bool && !out[0].Bool() {
		err = fmt.Errorf("latchkey-go: unlock found the lock not ours")
	}
	return err
}

func init() {
	register(implementation{
		name:    "latchkey-go",
		wait:    "pubsub",
		channel: func(key string) string { return "latchkey:{" + key + "}:ch" },
		open: func(urls []string, key string) (locker, error) {
			out, err := invoke(reflect.ValueOf(latchkey.Open), "Open", urls[0])
			if err != nil {
				return nil, err
			}
			client := out[0]
			out, err = invoke(client.MethodByName("NewMutex"), "Client.NewMutex", key)
			if err != nil {
				return nil, err
			}
			return latchkeyGo{client: client, mutex: out[0]}, nil
		},
	})
}
