#!/usr/bin/env python3
"""No import cycle between the library's modules.

Reads every file under src/ (the crate's top-level modules: src/x.rs, or
src/x/ with its submodules counted as x), collects the `crate::<module>`
paths each one uses outside its test module, and fails when the graph of
top-level modules has a cycle, printing it. `src/bin` and `src/ffi` count
like any other module; doc links are ignored.

Usage: tools/check-cycles.py [repository root]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def module_of(src: Path, file: Path) -> str | None:
    parts = file.relative_to(src).parts
    if parts[0] == "bin":
        return None  # the CLI uses the public API only
    if len(parts) == 1:
        name = parts[0][:-3]
        return None if name == "lib" else name
    return parts[0]


def code_of(text: str) -> str:
    # Drop the unit-test module and comments (doc links are not imports).
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def graph(src: Path) -> dict[str, set[str]]:
    modules = {module_of(src, f) for f in src.rglob("*.rs")} - {None}
    edges: dict[str, set[str]] = {m: set() for m in modules if m}
    for file in src.rglob("*.rs"):
        module = module_of(src, file)
        if module is None:
            continue
        code = code_of(file.read_text(encoding="utf-8"))
        used = set(re.findall(r"\bcrate::(\w+)", code))
        # `use crate::{a, b::c}` groups
        for group in re.findall(r"\buse crate::\{([^}]*)\}", code):
            used |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
        edges[module] |= {u for u in used if u in edges and u != module}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    edges = graph(root / "src")
    found = cycles(edges)
    for component in found:
        links = [f"{a} -> {b}" for a in component for b in sorted(edges[a]) if b in component]
        print(f"check-cycles: modules that import each other: {', '.join(component)} ({'; '.join(links)})", file=sys.stderr)
    if not found:
        print(f"check-cycles: {len(edges)} modules, no import cycle")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
