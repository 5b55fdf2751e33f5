//! Build script: gives the shared library its soname so that programs link
//! against `liblatchkey.so.0` and survive compatible upgrades.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblatchkey.so.0");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
