//go:build latchkey_chaos

package latchkey

import (
	"os"
	"sync"
)

// The binding's deliberately broken variants, for the chaos checker's
// self-test: it must catch each of them (tools/chaos/selftest.py). Only
// with the build tag latchkey_chaos; chosen once per process by
// LATCHKEY_CHAOS_VARIANT, as the library's own variants are (src/chaos.rs):
//   - go-unlock-ignores-loss: Unlock returns nil where the lease had been
//     lost (ErrNotHeld), so the holder is never told.

var chosenVariant = sync.OnceValue(func() string { return os.Getenv("LATCHKEY_CHAOS_VARIANT") })

// chaosVariant says whether the broken variant name is on in this process.
func chaosVariant(name string) bool { return chosenVariant() == name }
