//! Build script: gives the shared library its soname so that programs link
//! against `liblatchkey.so.0` and survive compatible upgrades, and generates
//! the C header from `src/ffi` with cbindgen.
//!
//! The header is written to `$OUT_DIR/latchkey.h` on every build; a unit
//! test (`ffi::tests::committed_header_is_fresh`) fails when the committed
//! `include/latchkey.h` differs from it. `LATCHKEY_WRITE_HEADER=1 cargo
//! build` (`make header`) rewrites the committed copy.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,liblatchkey.so.0");
    }
    generate_header();
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // Re-check the committed copy (the stale-header warning) when it changes.
    println!("cargo:rerun-if-changed=include/latchkey.h");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-env-changed=LATCHKEY_WRITE_HEADER");
}

fn generate_header() {
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cannot read cbindgen.toml: {e}"));
    // The version macros come from Cargo.toml, so they cannot drift from
    // latchkey_version().
    config.after_includes = Some(version_macros());
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate the C header: {e}"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("latchkey.h");
    bindings.write_to_file(&out);
    let committed = root.join("include/latchkey.h");
    if env::var("LATCHKEY_WRITE_HEADER").is_ok_and(|v| v == "1") {
        bindings.write_to_file(&committed);
    } else if !same_contents(&out, &committed) {
        println!(
            "cargo:warning=include/latchkey.h is stale: regenerate it with `make header` \
             (LATCHKEY_WRITE_HEADER=1 cargo build)"
        );
    }
}

fn version_macros() -> String {
    let part = |name: &str| env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"));
    format!(
        "\n#define LATCHKEY_VERSION_MAJOR {}\n#define LATCHKEY_VERSION_MINOR {}\n\
         #define LATCHKEY_VERSION_PATCH {}\n#define LATCHKEY_VERSION_STRING \"{}\"",
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
        part("CARGO_PKG_VERSION"),
    )
}

fn same_contents(a: &Path, b: &Path) -> bool {
    matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
}
