#!/usr/bin/env python3
"""The published crate carries exactly what builds it, and builds from it.

Runs `cargo package --list --offline` (no network, nothing built) and
checks that the list holds every source file of the library and the tool
(src/**/*.rs and the Lua scripts they include, as tracked by git), build.rs
and every file it reads, the C header, the README and the license files, and
nothing else (no tests, benchmarks, bindings, fuzz targets, tools or build
output). Also checks the publishing metadata of Cargo.toml and that no
dependency is a path dependency (a published crate cannot have one).

`make package` additionally builds the packaged crate (cargo's verify
step), offline.

Usage: tools/check-package.py [repository root]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

# What cargo adds to every package.
GENERATED = {"Cargo.toml", "Cargo.toml.orig", "Cargo.lock", ".cargo_vcs_info.json"}
# Besides src/: what builds the crate and the documents published with it.
REQUIRED = {
    "build.rs",
    "cbindgen.toml",
    "include/latchkey.h",
    "README.md",
    "LICENSE-APACHE",
    "LICENSE-MIT",
}
METADATA = ("description", "license", "readme", "keywords", "categories", "rust-version")


def package_list(root: Path) -> set[str]:
    env = dict(os.environ, CARGO_TERM_COLOR="never")
    result = subprocess.run(
        ["cargo", "package", "--list", "--offline", "--allow-dirty", "--quiet"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"cargo package --list failed:\n{result.stderr}")
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


def tracked_sources(root: Path) -> set[str]:
    result = subprocess.run(
        ["git", "ls-files", "src"], cwd=root, capture_output=True, text=True, check=True
    )
    return {
        path
        for path in result.stdout.split()
        if path.endswith((".rs", ".lua")) and (root / path).is_file()
    }


def files_build_rs_reads(root: Path) -> set[str]:
    """The paths build.rs joins to the manifest directory or watches."""
    text = (root / "build.rs").read_text(encoding="utf-8")
    joined = re.findall(r'root\.join\("([^"]+)"\)', text)
    watched = re.findall(r'cargo:rerun-if-changed=([^"\s]+)"', text)
    return set(joined) | set(watched)


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    problems: list[str] = []

    manifest = tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
    package = manifest.get("package", {})
    for field in METADATA:
        if not package.get(field):
            problems.append(f"Cargo.toml: [package] has no {field}")
    if "include" not in package:
        problems.append("Cargo.toml: [package] has no include list")
    for table in ("dependencies", "build-dependencies"):
        for name, spec in manifest.get(table, {}).items():
            if isinstance(spec, dict) and "path" in spec:
                problems.append(f"Cargo.toml: [{table}] {name} is a path dependency")

    listed = package_list(root)
    wanted = tracked_sources(root) | REQUIRED
    for missing in sorted(wanted - listed):
        problems.append(f"not in the package: {missing}")
    for extra in sorted(listed - wanted - GENERATED):
        problems.append(f"in the package but not needed to build it: {extra}")
    for path in sorted(files_build_rs_reads(root)):
        inside = path in listed or any(f.startswith(path.rstrip("/") + "/") for f in listed)
        if not inside:
            problems.append(f"build.rs reads {path}, which the package lacks")

    for problem in problems:
        print(f"check-package: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-package: {len(listed)} files, all needed, none missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
