//go:build !latchkey_shared && !latchkey_chaos

package latchkey

// By default the binding links the static library, so a built program needs
// no LD_LIBRARY_PATH and no installed liblatchkey. The system libraries after
// it are what rustc reports for the static library (make
// target/native-static-libs.txt); TestNativeStaticLibs checks they agree.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/release/liblatchkey.a -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
*/
import "C"

// linkMode says which library this build links (tests print it).
const linkMode = "static"
