#!/usr/bin/env python3
"""Certificates for the TLS tests, made with the openssl command line.

    python3 tools/tls_certs.py DIR

writes into DIR (made if missing) and prints one JSON line with the paths:

- ca.crt / ca.key: a test CA;
- server.crt / server.key: signed by it, for localhost and 127.0.0.1;
- client.crt / client.key: signed by it, for mutual TLS;
- other-ca.crt: an unrelated CA (a client trusting only it must refuse
  the server);
- wrong-name.crt / wrong-name.key: signed by the test CA for another name.

Keys are ECDSA P-256 (quick to make); certificates last one day. The
Python tests import `make`; the Rust and Go tests run this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys


def _openssl(*args: str, cwd: str) -> None:
    if shutil.which("openssl") is None:
        raise SystemExit(
            "tls_certs: the openssl command is missing; `make test` installs it "
            "(apt-get install -y openssl)"
        )
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"tls_certs: openssl {' '.join(args)} failed:\n{done.stderr}")


def _ca(name: str, subject: str, cwd: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "1", "-subj", subject,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", f"{name}.key", "-out", f"{name}.crt",
        cwd=cwd,
    )


def _leaf(name: str, subject: str, extensions: list[str], cwd: str) -> None:
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.csr",
        cwd=cwd,
    )
    with open(os.path.join(cwd, f"{name}.ext"), "w", encoding="utf-8") as f:
        f.write("\n".join(["basicConstraints=critical,CA:FALSE", *extensions]) + "\n")
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
        cwd=cwd,
    )


def make(directory: str) -> dict[str, str]:
    """Makes every certificate in `directory`; returns name -> path."""
    os.makedirs(directory, exist_ok=True)
    _ca("ca", "/CN=latchkey test CA", directory)
    _ca("other-ca", "/CN=latchkey unrelated CA", directory)
    # clientAuth too: cluster nodes show it to each other on the TLS bus.
    server = [
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "extendedKeyUsage=serverAuth,clientAuth",
    ]
    _leaf("server", "/CN=localhost", server, directory)
    _leaf("client", "/CN=latchkey test client", ["extendedKeyUsage=clientAuth"], directory)
    wrong = ["subjectAltName=DNS:redis.elsewhere.test", "extendedKeyUsage=serverAuth"]
    _leaf("wrong-name", "/CN=redis.elsewhere.test", wrong, directory)
    names = ["ca", "other-ca", "server", "client", "wrong-name"]
    paths = {}
    for name in names:
        paths[f"{name}.crt"] = os.path.join(directory, f"{name}.crt")
        if name != "other-ca":
            paths[f"{name}.key"] = os.path.join(directory, f"{name}.key")
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: tls_certs.py DIR")
    print(json.dumps(make(sys.argv[1])))
