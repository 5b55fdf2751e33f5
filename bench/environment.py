#!/usr/bin/env python3
"""The machine and the version of everything measured, as JSON (for
BENCHMARKS.md). Run from the repository root by bench/run.sh.

  environment.py OUT_JSON
"""

import datetime
import json
import os
import platform
import re
import subprocess
import sys


def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def lock_version(lockfile, package):
    """Versions of `package` in a Cargo.lock."""
    try:
        text = open(lockfile).read()
    except OSError:
        return "?"
    found = re.findall(r'\[\[package\]\]\nname = "' + re.escape(package) + r'"\nversion = "([^"]+)"', text)
    return ", ".join(found) or "?"


def go_version(module):
    try:
        text = open("bench/go/go.mod").read()
    except OSError:
        return "?"
    m = re.search(re.escape(module) + r"\s+(v\S+)", text)
    return m.group(1) if m else "?"


def py_version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - absent is a fine answer
        return "not installed"


def machine():
    info = {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = info.get("model name", "?")
    if "cpu family" in info:
        model += f" (family {info['cpu family']}, model {info.get('model', '?')}, stepping {info.get('stepping', '?')})"
    hypervisor = ""
    for line in run("lscpu").splitlines():
        if line.startswith("Hypervisor vendor:"):
            hypervisor = line.split(":", 1)[1].strip()
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    virt = ", ".join(x for x in (hypervisor and f"{hypervisor} virtual machine", run("systemd-detect-virt")) if x and x != "none") or "none detected"
    os_name = "?"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "CPU": model,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "OS": os_name,
        "virtualization": virt,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv):
    cargo = open("Cargo.toml").read()
    latchkey = re.search(r'^version = "([^"]+)"', cargo, re.M)
    redis_server = run("redis-server", "--version")
    m = re.search(r"v=(\S+)", redis_server)
    versions = {
        "latchkey": latchkey.group(1) if latchkey else "?",
        "redis crate (latchkey)": lock_version("Cargo.lock", "redis"),
        "Redis server": m.group(1) if m else redis_server or "?",
        "redis-benchmark": run("redis-benchmark", "--version").replace("redis-benchmark ", "") or "?",
        "redis-py": py_version("redis"),
        "python-redis-lock": py_version("python-redis-lock"),
        "pottery": py_version("pottery"),
        "redsync": go_version("github.com/go-redsync/redsync/v4"),
        "go-redis": go_version("github.com/redis/go-redis/v9"),
        "redlock-rs (`redlock` crate)": lock_version("bench/peers-rust/Cargo.lock", "redlock"),
        "redis crate (redlock-rs)": lock_version("bench/peers-rust/Cargo.lock", "redis"),
        "matplotlib": py_version("matplotlib"),
        "Rust": run("rustc", "--version") or "?",
        "Go": run("go", "version") or "not installed",
        "Python": platform.python_version(),
    }
    out = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "versions": versions,
    }
    with open(argv[1], "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv)
