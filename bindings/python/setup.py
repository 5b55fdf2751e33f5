"""Build hook: `pip install` / `pip wheel` build liblatchkey with cargo and
bundle it in the package (see README.md, "Installing").

pyproject.toml holds the metadata. setuptools-rust (a build requirement in
pyproject.toml) runs `cargo rustc --release --lib` on the crate at the
repository root (../../Cargo.toml), copies the shared library into the
package as ``latchkey/liblatchkey.abi3.so``, which ``_lib.py`` loads, and
strips that copy. The library is plain C ABI loaded with ctypes: it does
not link Python, so one wheel serves every CPython from 3.9 on (tag
cp39-abi3-<platform>).

cargo builds into the repository's ``target`` directory (or CARGO_TARGET_DIR),
so a checkout that already ran ``cargo build --release`` rebuilds nothing.

The crate is outside this directory, so the package is built from a checkout
of the repository (pip builds ./bindings/python in place, crate included);
an sdist of this directory alone does not carry the crate, and building a
wheel from one stops with the message below.
"""

from pathlib import Path

from setuptools import setup
from setuptools_rust import Binding, RustExtension, Strip

HERE = Path(__file__).resolve().parent
CRATE = HERE.parent.parent / "Cargo.toml"

if not CRATE.is_file():
    raise SystemExit(
        f"latchkey: the Rust crate is not at {CRATE}: build the Python package from a "
        "checkout of the latchkey repository (`pip install ./bindings/python` at its root)"
    )

setup(
    rust_extensions=[
        RustExtension(
            # latchkey/liblatchkey.abi3.so (the name _lib.py looks for)
            "latchkey.liblatchkey",
            path=str(CRATE),
            binding=Binding.NoBinding,
            py_limited_api=True,
            # strip -x: 3.4 MB instead of 29 MB (the release profile keeps
            # debug information for the repository's own tools)
            strip=Strip.All,
            # Cargo.toml's own [lib] crate types and features: the very unit
            # `cargo build --release` builds, so after one nothing is rebuilt
            # (only `cdylib`, setuptools-rust's default, would be a different
            # unit that cargo rebuilds, both ways, each time the other ran).
            args=["--crate-type", "rlib,cdylib,staticlib"],
        )
    ],
    # A wheel for every CPython >= 3.9 on this platform: the library uses no
    # Python API at all.
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
    zip_safe=False,
)
