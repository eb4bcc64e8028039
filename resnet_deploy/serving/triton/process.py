"""What a local Triton server needs from this machine: an address it can bind, free ports, and
a process that never outlives its owner."""

from __future__ import annotations

import ipaddress
import os
import socket
import time

from ..._errors import ResnetDeployError

__all__ = ["TritonServerError", "check_host", "check_port_free", "free_port",
           "group_processes", "wait_group_gone"]


class TritonServerError(ResnetDeployError):
    """The server could not be found, started, or did not load a model; the message has its reason."""


def check_host(host: str) -> None:
    """Triton binds IPv4 addresses, not names (``localhost`` bound 255.255.255.255): an address of
    this machine, or 0.0.0.0 for all of them; anything else is refused in one line. Linux lets a
    socket bind a broadcast or multicast address, but no client can connect to a server there."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise TritonServerError(f"--host {host!r} is not an IPv4 address: Triton binds addresses, not names "
                                "(127.0.0.1 for this machine, 0.0.0.0 for every interface)") from None
    if address.version != 4:
        raise TritonServerError(f"--host {host}: Triton's HTTP service here binds IPv4 addresses only")
    if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255") or host in _broadcast_addresses():
        kind = "multicast" if address.is_multicast else "broadcast"
        raise TritonServerError(f"--host {host} is a {kind} address: a server there can take no connection; give an "
                                "address of this machine (127.0.0.1, or 0.0.0.0 for every interface)")
    with socket.socket() as s:
        try:
            s.bind((host, 0))
        except OSError as exc:
            raise TritonServerError(f"--host {host} is not an address of this machine "
                                    f"({exc.strerror or exc})") from None


def _broadcast_addresses() -> set[str]:
    """The broadcast addresses of this machine's subnets (``127.255.255.255``, ``192.0.2.255``),
    from the kernel's routing table (Linux ``/proc/net/fib_trie``); empty elsewhere."""
    try:
        with open("/proc/net/fib_trie", encoding="ascii", errors="replace") as fib:
            lines = fib.read().splitlines()
    except OSError:
        return set()
    return {lines[i - 1].split()[-1] for i, line in enumerate(lines) if i and line.strip().endswith("BROADCAST")}


def check_port_free(host: str, port: int) -> None:
    """Refuse a port that a socket listens on. Bound as Triton binds it (``SO_REUSEADDR``, as
    libevent's listeners and gRPC set it): connections in TIME-WAIT, such as a readiness probe's
    from a server stopped a moment ago, do not keep a restart from binding it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise TritonServerError(f"port {port} on {host} is in use ({exc.strerror or exc})") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_group_gone(pgid: int, timeout: float) -> None:
    """Until no process of the group is left (a killed stub may take a moment to be reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.05)


def group_processes(pgid: int, name_prefix: str) -> set[int]:
    """The pids of the live processes of group ``pgid`` whose name starts with ``name_prefix``
    (Linux ``/proc``; the kernel keeps 15 characters of a name): the Python backend's stubs of a
    server. A process that died but is not yet reaped (a zombie) is not live."""
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if int(rest[2]) == pgid and rest[0] not in "ZX" and name.startswith(name_prefix[:15]):  # state, ppid, pgrp, ...
            found.add(int(entry.name))
    return found
