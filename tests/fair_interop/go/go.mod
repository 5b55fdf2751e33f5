module latchkey-fair-waiter

go 1.24

require latchkey v0.0.0

// The binding lives in this repository; it links ../../../target/release/liblatchkey.a
// (tests/fair_interop.rs builds with -overlay to link the library cargo built for it).
replace latchkey => ../../../bindings/go
