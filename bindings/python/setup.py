"""Build hook: bundle liblatchkey into the package (see README.md, "Installing").

pyproject.toml holds the metadata. This file only makes `pip install` and
`pip wheel` carry the shared library inside the package, so an installed
`latchkey` works without the repository:

- LATCHKEY_BUNDLE_LIBRARY=/path/to/liblatchkey.so bundles that file;
- LATCHKEY_BUNDLE_LIBRARY=0 bundles nothing (the installed package then
  needs LATCHKEY_LIBRARY at run time);
- otherwise the repository's target/release/liblatchkey.so is bundled when
  it exists (build it first with `cargo build --release`).

A package that carries the library is marked as platform-specific, so its
wheel is tagged for this platform instead of "any".
"""

import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = Path(__file__).resolve().parent
FILE_NAME = "liblatchkey.dylib" if sys.platform == "darwin" else "liblatchkey.so"


def library_to_bundle() -> Optional[Path]:
    """The library file to copy into the package, if any."""
    if (HERE / "latchkey" / FILE_NAME).is_file():
        return HERE / "latchkey" / FILE_NAME  # put there by hand: package data
    choice = os.environ.get("LATCHKEY_BUNDLE_LIBRARY")
    if choice is not None:
        if choice in ("", "0", "no", "false"):
            return None
        path = Path(choice)
        if not path.is_file():
            raise SystemExit(f"LATCHKEY_BUNDLE_LIBRARY={choice!r} is not a file")
        return path
    repo_build = HERE.parent.parent / "target" / "release" / FILE_NAME
    return repo_build if repo_build.is_file() else None


BUNDLE = library_to_bundle()


class BuildPyWithLibrary(build_py):
    """build_py that also copies the shared library into the built package."""

    def run(self) -> None:
        super().run()
        if BUNDLE is not None:
            target = Path(self.build_lib) / "latchkey" / FILE_NAME
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(BUNDLE, target)
            print(f"latchkey: bundled {BUNDLE} as {target}")


class MaybeBinaryDistribution(Distribution):
    """Platform-specific when the library is bundled."""

    def has_ext_modules(self) -> bool:
        return BUNDLE is not None


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=MaybeBinaryDistribution)
