//go:build latchkey_chaos

package latchkey

// With the build tag latchkey_chaos (the chaos checker's self-test only,
// tools/chaos/selftest.py) the binding links the static library built with
// the chaos-variants feature into its own target directory (make
// chaos-build), and the binding's own broken variants (chaos_on.go) can be
// switched on. Never in a program of yours.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/chaos-variants/release/liblatchkey.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"

// linkMode says which library this build links (tests print it).
const linkMode = "chaos-variants"
