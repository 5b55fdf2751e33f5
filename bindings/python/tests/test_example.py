"""examples/python/contend.py next to the Rust tool's worker, as `make demo`
runs them: the counter equals the number of acquisitions, and the lines
have the demo's format."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import CLI, REPO

CONTEND = REPO / "examples" / "python" / "contend.py"
LINE = re.compile(
    r"^\[python pid [ \d]{6}\] holds '([^']+)' fencing token (\d+), counter (\d+) -> (\d+)$"
)


def test_contend_example(
    url: str, name: str, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    count = 20
    commands = [[sys.executable, str(CONTEND), url, name, str(count), str(counter)]] * 2
    if CLI.is_file():
        commands.append(
            [
                str(CLI),
                "--url",
                url,
                "worker",
                name,
                "--count",
                str(count),
                "--counter",
                str(counter),
            ]
        )
    procs = [
        subprocess.Popen(
            c, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c in commands
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for p, (_out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    assert int(counter.read_text()) == count * len(commands)
    for out, _ in outputs[:2]:
        lines = out.splitlines()
        assert len(lines) == count
        for line in lines:
            m = LINE.match(line)
            assert m, line
            assert m.group(1) == name and int(m.group(4)) == int(m.group(3)) + 1
    # The demo lines up the workers of every language: the Rust worker's
    # prefix ends where the Python workers' does.
    python_width = outputs[0][0].splitlines()[0].index("]")
    for line in outputs[2][0].splitlines() if len(outputs) > 2 else []:
        assert line.index("]") == python_width, line


def test_contend_usage(subprocess_env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, str(CONTEND)],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "usage" in out.stderr
