#!/usr/bin/env python3
"""Every documented claim is backed by a test that exists.

The claims are read from the README (the bold-led paragraphs of its
Semantics section and the rows of its deployment and configuration tables)
and from tests/claims.tsv, which maps each claim to the tests that back it
(`path::name`, one or more, separated by tabs). The check fails when a
claim has no row, a row names no test, or a named test does not exist, so
a new claim without a test fails the build.

Usage: tools/check-claims.py [repository root]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def readme_claims(readme: str) -> list[str]:
    claims: list[str] = []
    semantics = re.search(r"^## Semantics\n(.*?)^## ", readme, re.S | re.M)
    if semantics:
        claims += [f"semantics: {m}" for m in re.findall(r"^\*\*(.+?)\*\*", semantics.group(1), re.M)]
    for title, prefix in (("Beyond one Redis", "deployment"), ("Configuration", "configuration")):
        section = re.search(rf"^## {title}\n(.*?)^## ", readme, re.S | re.M)
        if not section:
            continue
        rows = [l for l in section.group(1).splitlines() if l.startswith("| ")]
        for row in rows[1:]:  # the first row is the header
            first = row.split("|")[1].strip()
            if first and not set(first) <= {"-"}:
                claims.append(f"{prefix}: {first}")
    return claims


def test_exists(root: Path, reference: str) -> bool:
    path, _, name = reference.partition("::")
    file = root / path
    if not name or not file.is_file():
        return False
    text = file.read_text(encoding="utf-8", errors="replace")
    patterns = {
        ".rs": rf"\bfn {re.escape(name)}\s*\(",
        ".py": rf"\bdef {re.escape(name)}\s*\(",
        ".go": rf"\bfunc {re.escape(name)}\s*\(",
        ".c": rf'test_pass\("{re.escape(name)}"\)',
        ".sh": re.escape(name),
    }
    pattern = patterns.get(file.suffix)
    return bool(pattern and re.search(pattern, text))


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    claims = readme_claims((root / "README.md").read_text(encoding="utf-8"))
    table: dict[str, list[str]] = {}
    for number, line in enumerate((root / "tests/claims.tsv").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        claim, *tests = line.split("\t")
        table[claim.strip()] = [t.strip() for t in tests if t.strip()]
    problems: list[str] = []
    for claim in claims:
        if claim not in table:
            problems.append(f"no row in tests/claims.tsv for the README claim {claim!r}")
        elif not table[claim]:
            problems.append(f"the claim {claim!r} names no test")
    for claim, tests in table.items():
        if claim not in claims:
            problems.append(f"tests/claims.tsv names {claim!r}, which the README no longer claims")
        for reference in tests:
            if not test_exists(root, reference):
                problems.append(f"the claim {claim!r} names a test that does not exist: {reference}")
    for problem in problems:
        print(f"check-claims: {problem}", file=sys.stderr)
    if not problems:
        print(f"check-claims: {len(claims)} claims, each backed by a test")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
