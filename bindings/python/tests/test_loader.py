"""Finding the library: LATCHKEY_LIBRARY, the packaged copy, the
repository's target/release, and a clear message when none is there."""

from __future__ import annotations

import ctypes.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PACKAGE_DIR, REPO

IMPORT = """
try:
    import latchkey
except ImportError as e:
    print("ImportError:", e)
"""


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # From the repository root, which holds no `latchkey` package: `-c` puts
    # the working directory first on sys.path, and pytest run from
    # bindings/python would import the source package, not PYTHONPATH's.
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_latchkey_library_pointing_nowhere_says_what_to_do(subprocess_env: dict[str, str]) -> None:
    env = dict(subprocess_env, LATCHKEY_LIBRARY="/nonexistent/liblatchkey.so")
    out = run_python(IMPORT, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ImportError: ")
    assert "LATCHKEY_LIBRARY" in out.stdout and "/nonexistent/liblatchkey.so" in out.stdout
    assert "cargo build --release" in out.stdout


def test_latchkey_library_is_used(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    copy = tmp_path / "liblatchkey.so"
    shutil.copy(REPO / "target" / "release" / "liblatchkey.so", copy)
    env = dict(subprocess_env, LATCHKEY_LIBRARY=str(copy))
    out = run_python("import latchkey; print(latchkey.library_path)", env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(copy)


@pytest.mark.skipif(
    ctypes.util.find_library("latchkey") is not None,
    reason="a system-installed liblatchkey would be found",
)
def test_without_any_library_the_message_says_how_to_build(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    # A copy of the package outside the repository, with no library anywhere.
    shutil.copytree(
        PACKAGE_DIR / "latchkey",
        tmp_path / "latchkey",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    env = dict(subprocess_env, PYTHONPATH=str(tmp_path))
    env.pop("LATCHKEY_LIBRARY", None)
    out = run_python(IMPORT, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ImportError: latchkey: cannot find liblatchkey.so")
    assert "cargo build --release" in out.stdout and "LATCHKEY_LIBRARY" in out.stdout


@pytest.mark.skipif(
    ctypes.util.find_library("latchkey") is not None,
    reason="a system-installed liblatchkey would be found",
)
def test_a_build_in_a_directory_above_the_package_is_not_loaded(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    # A working build three directories above a copy of the package (as a
    # virtualenv inside some other checkout would be): not looked at.
    stray = tmp_path / "target" / "release" / "liblatchkey.so"
    stray.parent.mkdir(parents=True)
    shutil.copy(REPO / "target" / "release" / "liblatchkey.so", stray)
    site = tmp_path / "a" / "b" / "site-packages"
    shutil.copytree(
        PACKAGE_DIR / "latchkey",
        site / "latchkey",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    env = dict(subprocess_env, PYTHONPATH=str(site))
    env.pop("LATCHKEY_LIBRARY", None)
    out = run_python(IMPORT, env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ImportError: latchkey: cannot find liblatchkey.so"), out.stdout
    assert str(stray) not in out.stdout


def test_a_packaged_copy_is_found(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    shutil.copytree(
        PACKAGE_DIR / "latchkey",
        tmp_path / "latchkey",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(REPO / "target" / "release" / "liblatchkey.so", tmp_path / "latchkey")
    env = dict(subprocess_env, PYTHONPATH=str(tmp_path))
    env.pop("LATCHKEY_LIBRARY", None)
    out = run_python("import latchkey; print(latchkey.library_path)", env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str((tmp_path / "latchkey" / "liblatchkey.so").resolve())
