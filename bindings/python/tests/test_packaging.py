"""The build hook (setup.py) bundles the library as documented:
LATCHKEY_BUNDLE_LIBRARY=path bundles that file, =0 bundles nothing, a path
that is not a file stops the build with a message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PACKAGE_DIR, REPO

LIBRARY = REPO / "target" / "release" / "liblatchkey.so"

pytest.importorskip("setuptools", reason="setuptools builds the package")


def build_py(tmp_path: Path, bundle: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LATCHKEY_BUNDLE_LIBRARY=bundle)
    return subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)],
        cwd=PACKAGE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_named_library_is_bundled(tmp_path: Path) -> None:
    assert LIBRARY.is_file(), "cargo build --release first (make python-test does)"
    out = build_py(tmp_path, str(LIBRARY))
    assert out.returncode == 0, out.stderr
    bundled = tmp_path / "latchkey" / "liblatchkey.so"
    assert bundled.read_bytes() == LIBRARY.read_bytes()


def test_zero_bundles_nothing(tmp_path: Path) -> None:
    out = build_py(tmp_path, "0")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "latchkey" / "__init__.py").is_file()
    assert not (tmp_path / "latchkey" / "liblatchkey.so").exists()


def test_a_missing_file_stops_the_build(tmp_path: Path) -> None:
    out = build_py(tmp_path, str(tmp_path / "nowhere.so"))
    assert out.returncode != 0
    assert "is not a file" in out.stderr
