"""Packaging, as a user installs it: in a fresh virtualenv, a real
`pip install ./bindings/python` and `pip wheel ./bindings/python` build the
library themselves (setuptools-rust, setup.py) and bundle a stripped copy;
the wheel is tagged for this platform and `auditwheel show` accepts it; the
installed package loads its own copy or LATCHKEY_LIBRARY, never a stray
`target/release` above it.

cargo builds into the repository's target directory (CARGO_TARGET_DIR), the
same unit `cargo build --release` builds: after `make python-test`'s cargo
build, pip's builds rebuild nothing and this module takes about half a
minute (most of it pip setting up its build environments)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from conftest import PACKAGE_DIR, REPO

LIBRARY = REPO / "target" / "release" / "liblatchkey.so"
BUNDLED = "liblatchkey.abi3.so"
# Stripped, the library is about 3.4 MB (1.9 MB before TLS: rustls and ring
# add about 0.8 MB of code); with the release profile's debug information it
# is about 29 MB. The bound tells the two apart.
MAX_BUNDLED_BYTES = 4_000_000
BUILD_TIMEOUT = 900  # a cold cargo build on two cores; warm, seconds

SHOW = "import latchkey; print(latchkey.library_path); print(latchkey.library_version())"
IMPORT = """
try:
    import latchkey
except ImportError as e:
    print("ImportError:", e)
else:
    print("loaded", latchkey.library_path)
"""


@dataclass
class Installed:
    base: Path
    python: Path
    package: Path  # the installed package directory, in site-packages
    wheel: Path
    stray: Path
    env: dict[str, str]


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{argv} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("pypkg")
    # A stray "build" three directories above the installed package's
    # virtualenv, as in the report: not even a library, so loading it fails.
    stray = base / "target" / "release" / "liblatchkey.so"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not a library: the installed package must never load this\n")
    venv = base / "a" / "b" / "venv"
    run([sys.executable, "-m", "venv", str(venv)], dict(os.environ), base)
    python = venv / "bin" / "python"

    env = {k: v for k, v in os.environ.items() if k not in ("LATCHKEY_LIBRARY", "PYTHONPATH")}
    env.update(
        CARGO_TARGET_DIR=str(REPO / "target"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    wheels = base / "wheelhouse"
    pip = [str(python), "-m", "pip"]
    run(pip + ["wheel", "--no-deps", "-w", str(wheels), str(PACKAGE_DIR)], env, REPO, BUILD_TIMEOUT)
    run(pip + ["install", str(PACKAGE_DIR)], env, REPO, BUILD_TIMEOUT)
    (wheel,) = wheels.glob("latchkey-*.whl")
    site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env, base
    )
    yield Installed(base, python, Path(site.strip()) / "latchkey", wheel, stray, env)


def test_pip_install_builds_and_bundles_a_stripped_library(installed: Installed) -> None:
    out = run([str(installed.python), "-c", SHOW], installed.env, installed.base).split()
    bundled = installed.package / BUNDLED
    assert out[0] == str(bundled), "not the package's own copy"
    assert (
        out[1]
        == run([str(LIBRARY.parent / "latchkey"), "--version"], installed.env, REPO).split()[-1]
    ), "the bundled library is not this checkout's version"
    size = bundled.stat().st_size
    assert size < MAX_BUNDLED_BYTES, f"{bundled} is {size} bytes: not stripped?"
    if shutil.which("readelf"):
        sections = run(["readelf", "-S", "-W", str(bundled)], installed.env, installed.base)
        assert ".debug_" not in sections, sections


def test_latchkey_library_overrides_the_bundled_copy(installed: Installed) -> None:
    env = dict(installed.env, LATCHKEY_LIBRARY=str(LIBRARY))
    out = run([str(installed.python), "-c", SHOW], env, installed.base).split()
    assert out[0] == str(LIBRARY)


def test_a_stray_build_above_the_package_is_never_loaded(installed: Installed) -> None:
    # The installed package without its copy (as a package that bundled
    # nothing used to be): the stray target/release/liblatchkey.so above it
    # is not looked at; the import says what to do instead.
    if subprocess.run(
        [
            str(installed.python),
            "-c",
            "import ctypes.util, sys; sys.exit(ctypes.util.find_library('latchkey') is not None)",
        ],
        env=installed.env,
    ).returncode:
        pytest.skip("a system-installed liblatchkey would be found")
    bare = installed.base / "a" / "b" / "c" / "site-packages"
    shutil.copytree(
        installed.package, bare / "latchkey", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    env = dict(installed.env, PYTHONPATH=str(bare))
    out = run([str(installed.python), "-c", IMPORT], env, installed.base)
    assert out.startswith("ImportError: latchkey: cannot find liblatchkey.so"), out
    assert str(installed.stray) not in out and "cannot load" not in out
    assert "pip install ./bindings/python" in out and "LATCHKEY_LIBRARY" in out


def test_pip_wheel_is_platform_tagged_and_carries_the_stripped_library(
    installed: Installed,
) -> None:
    name = installed.wheel.name
    assert not name.endswith("-none-any.whl"), name
    assert name.endswith(f"-cp39-abi3-linux_{platform.machine()}.whl"), name
    with zipfile.ZipFile(installed.wheel) as wheel:
        info = wheel.getinfo(f"latchkey/{BUNDLED}")
        assert info.file_size < MAX_BUNDLED_BYTES, f"{info.file_size} bytes: not stripped?"
        assert "latchkey/__init__.py" in wheel.namelist()
        assert "latchkey/py.typed" in wheel.namelist()


def test_auditwheel_accepts_the_wheel(installed: Installed) -> None:
    python = str(installed.python)
    run([python, "-m", "pip", "install", "-q", "auditwheel"], installed.env, installed.base)
    out = run([python, "-m", "auditwheel", "show", str(installed.wheel)], installed.env, REPO)
    assert "is consistent with the" in " ".join(out.split()), out
    assert "manylinux" in out, out


def test_a_wheel_outside_a_checkout_says_where_the_crate_is(
    installed: Installed, tmp_path: Path
) -> None:
    # What an sdist of bindings/python alone would hold: no crate above it.
    copy = tmp_path / "python"
    shutil.copytree(
        PACKAGE_DIR,
        copy,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".*_cache", "*.so"),
    )
    out = subprocess.run(
        [str(installed.python), "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(copy)],
        cwd=tmp_path,
        env=installed.env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    assert out.returncode != 0
    assert "build the Python package from a checkout of the latchkey repository" in (
        out.stdout + out.stderr
    )
