"""The set-up a fresh machine gets: requirements.lock pins what pyproject.toml asks for, and the
environment the tests run in holds exactly those versions; the tests cannot reach the network."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.netguard import PREAMBLE, NetworkBlocked, child_env

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)\s*(?:;\s*(.+))?$")


def _pins() -> dict[str, str]:
    """Package -> version pinned in requirements.lock for this interpreter and platform."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.strip())
        if match and (match.group(3) is None or Marker(match.group(3)).evaluate()):
            pins[canonicalize_name(match.group(1).split("[")[0])] = match.group(2)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def test_lock_pins_every_declared_dependency_within_its_range() -> None:
    pins = _pins()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: recompile the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name], str(requirement))


def test_environment_holds_the_locked_versions() -> None:
    pins = _pins()
    names = {canonicalize_name(r.name) for r in _declared()}
    installed = {name: metadata.version(name) for name in names}
    assert {name: pins[name] for name in names} == installed


def test_no_test_can_reach_the_network() -> None:
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect(("203.0.113.7", 80))  # TEST-NET-3: would time out, never answer
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect_ex(("8.8.8.8", 53))


def test_no_test_can_look_up_a_name_either() -> None:
    """A leaked request fails before its DNS query; this machine's names and written-out addresses still
    resolve (the stand-in Bot API, PostgreSQL on 127.0.0.1)."""
    with pytest.raises(NetworkBlocked, match="test tried to look up 'example.com'"):
        socket.getaddrinfo("example.com", 80)
    with pytest.raises(NetworkBlocked):
        socket.getaddrinfo(b"api.telegram.org", 443, socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(NetworkBlocked):
        socket.gethostbyname("www.sse.com.cn")
    with pytest.raises(NetworkBlocked):
        socket.gethostbyname_ex("www.szse.cn")
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("example.com", 80), timeout=1)  # through socket's own lookup
    assert {info[4][0] for info in socket.getaddrinfo("127.0.0.1", 80, socket.AF_INET)} == {"127.0.0.1"}
    assert {info[4][0] for info in socket.getaddrinfo("localhost", 80, socket.AF_INET)} == {"127.0.0.1"}
    assert socket.gethostbyname("localhost") == "127.0.0.1"
    assert socket.getaddrinfo(None, 80, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)


def test_processes_tests_start_cannot_reach_the_network_either(tmp_path: Path) -> None:
    """The guard also holds in a child process started the way test_sandbox starts `marginbot run`."""
    code = PREAMBLE + "import socket\nsocket.socket().connect(('203.0.113.7', 80))\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=child_env(os.environ),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "NetworkBlocked: test tried to connect to ('203.0.113.7', 80)" in done.stderr
    code = PREAMBLE + "import socket\nsocket.getaddrinfo('example.com', 80)\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=child_env(os.environ),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "NetworkBlocked: test tried to look up 'example.com'" in done.stderr
