module latchkey-ffi-cost

go 1.24

require latchkey v0.0.0

// The binding lives in this repository; it links ../../../target/release/liblatchkey.a.
replace latchkey => ../../../bindings/go
