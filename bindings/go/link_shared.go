//go:build latchkey_shared

package latchkey

// With the build tag latchkey_shared the binding links liblatchkey.so from
// the repository's target/release instead of the static library. At run
// time the program needs liblatchkey.so.0 (the soname): either `make install`
// (then run ldconfig), or a symbolic link target/release/liblatchkey.so.0 ->
// liblatchkey.so, which the rpath below finds without LD_LIBRARY_PATH.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/release -llatchkey -Wl,-rpath,${SRCDIR}/../../target/release
*/
import "C"

// linkMode says which library this build links (tests print it).
const linkMode = "shared"
