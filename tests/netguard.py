"""No test touches the network: a connection to anything but this machine raises NetworkBlocked, and so
does looking up a name other than localhost (a leaked request would otherwise still send a DNS query).

Installed in the test process by conftest, and in every process a test starts (`marginbot run` in
test_sandbox) through `PREAMBLE` and `child_env`: the recorded upstream payloads and the stand-in
Bot API are all on loopback or patched in, so a blocked connection is a test that leaked out.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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


def _local_name(host: object) -> bool:
    """True for a host whose lookup asks no name server: none (the wildcard), localhost, or an address
    written out (a connection to it is checked by the connect guard)."""
    if host is None:
        return True
    name = (host.decode("ascii", "replace") if isinstance(host, bytes | bytearray) else str(host)).strip()
    name = name.rstrip(".").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def _refusing_names(lookup: Callable[..., Any]) -> Callable[..., Any]:
    """`lookup` (socket.getaddrinfo and the like), refusing any name but localhost's."""

    @functools.wraps(lookup)
    def guarded(host: object, *args: object, **kwargs: object) -> Any:
        if not _local_name(host):
            raise NetworkBlocked(f"test tried to look up {host!r}")
        return lookup(host, *args, **kwargs)

    guarded.guarded = True  # type: ignore[attr-defined]
    return guarded


def _install_lookup_guard() -> None:
    """Make socket.getaddrinfo, gethostbyname and gethostbyname_ex refuse names other than localhost."""
    if getattr(socket.getaddrinfo, "guarded", False):
        return
    socket.getaddrinfo = _refusing_names(socket.getaddrinfo)
    socket.gethostbyname = _refusing_names(socket.gethostbyname)
    socket.gethostbyname_ex = _refusing_names(socket.gethostbyname_ex)


def install() -> None:
    """Make socket connections to non-loopback addresses, and lookups of names other than localhost,
    fail loudly (idempotent)."""
    _install_lookup_guard()
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
