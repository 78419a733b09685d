"""No test touches the network: a connection to anything but this machine raises NetworkBlocked.

Installed in the test process by conftest, and in every process a test starts (`marginbot run` in
test_sandbox) through `PREAMBLE` and `child_env`: the recorded upstream payloads and the stand-in
Bot API are all on loopback or patched in, so a blocked connection is a test that leaked out.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The first line of the code a test runs with `python -c`: the guard before anything else.
PREAMBLE = "import tests.netguard; tests.netguard.install()\n"


class NetworkBlocked(RuntimeError):
    """A test tried to reach a host other than this machine."""


def _local(address: object) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths (PostgreSQL's socket) stay on the machine
        return True
    host = str(address[0])
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def install() -> None:
    """Make socket connections to non-loopback addresses fail loudly (idempotent)."""
    if getattr(socket.socket.connect, "guarded", False):
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> None:
        if not _local(address):
            raise NetworkBlocked(f"test tried to connect to {address!r}")
        connect(self, address)  # type: ignore[arg-type]

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if not _local(address):
            raise NetworkBlocked(f"test tried to connect to {address!r}")
        return connect_ex(self, address)  # type: ignore[arg-type]

    guarded_connect.guarded = True  # type: ignore[attr-defined]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for a child process whose code starts with PREAMBLE: the project root on its path."""
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path}
