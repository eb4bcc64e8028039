"""What a local Triton server needs from this machine, read without starting one: the addresses
and ports it may bind, what its log says about how it ended, and what a run cut short leaves
behind (issue 26 A.3, B.5, C.2, C.3). ``tests/serving/triton/test_triton_server.py`` holds the same cases
against the real server."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from resnet_deploy._owned import pid_namespace
from resnet_deploy.serving.triton import leftovers
from resnet_deploy.serving.triton.log import exit_reason, last_lines
from resnet_deploy.serving.triton.process import TritonServerError, check_host, check_port_free
from resnet_deploy.serving.triton.server import TritonServer

from ..._pids import dead_pid

# What Triton 2.51 logged before one request of deeply nested JSON killed it: nothing of the crash.
CRASH_LOG = """\
W1207 02:21:32.561893 12315 metrics.cc:798] "DCGM unable to start: DCGM initialization error"
I1207 02:21:32.562096 12315 tritonserver.cc:2598]
+----------------------------------+------------------------------+
| Option                           | Value                        |
+----------------------------------+------------------------------+
| server_version                   | 2.51.0                       |
+----------------------------------+------------------------------+

I1207 02:21:32.568118 12315 grpc_server.cc:2558] "Started GRPCInferenceService at 127.0.0.1:42475"
I1207 02:21:32.568343 12315 http_server.cc:4713] "Started HTTPService at 127.0.0.1:57539"
I1207 02:21:32.609700 12315 http_server.cc:362] "Started Metrics Service at 127.0.0.1:33641"
"""
FAILED_LOG = CRASH_LOG + ('E1207 02:21:33.0 12315 model_lifecycle.cc:654] '
                          '"failed to load \'m\' version 1: Internal: boom"\n')


@pytest.mark.parametrize("code, log, needles, absent", [
    # A segfault is a crash, named with its signal; the last lines are the log's own, not the first error.
    (-11, CRASH_LOG, ["tritonserver crashed: killed by signal 11 (SIGSEGV)", "nested",
                      "its log ends: Started GRPCInferenceService at 127.0.0.1:42475; Started HTTPService at "
                      "127.0.0.1:57539; Started Metrics Service at 127.0.0.1:33641"], ["DCGM", "|", "exited"]),
    (-9, CRASH_LOG, ["crashed: killed by signal 9 (SIGKILL)", "Started Metrics Service"], ["nested"]),
    (-6, "", ["crashed: killed by signal 6 (SIGABRT)", "its log ends: nothing"], []),
    # An exit with a status is the server's own decision: its reason, not "crashed".
    (1, FAILED_LOG, ["exited by itself with status 1: failed to load 'm' version 1: Internal: boom"], ["crashed"]),
])
def test_how_the_server_ended_is_said_in_one_line(code: int, log: str, needles: list[str], absent: list[str]) -> None:
    said = exit_reason(code, log)
    print(said)
    assert "\n" not in said
    for needle in needles:
        assert needle in said
    for word in absent:
        assert word not in said


def test_last_lines_skip_the_options_table_and_gpu_noise() -> None:
    assert last_lines(CRASH_LOG, 1) == ["Started Metrics Service at 127.0.0.1:33641"]
    assert all(not line.startswith(("|", "+")) and "DCGM" not in line for line in last_lines(CRASH_LOG, 10))


@pytest.mark.parametrize("host, needle", [
    ("255.255.255.255", "is a broadcast address"),
    ("127.255.255.255", "is a broadcast address"),  # the loopback subnet's, from the kernel's table
    ("224.0.0.1", "is a multicast address"),
    ("239.255.255.250", "is a multicast address"),
    ("localhost", "not an IPv4 address"),
    ("192.0.2.1", "not an address of this machine"),
])
def test_a_host_no_client_could_reach_is_refused(host: str, needle: str) -> None:
    with pytest.raises(TritonServerError, match=needle) as info:
        check_host(host)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_addresses_of_this_machine_pass(host: str) -> None:
    check_host(host)


def _time_wait_port() -> int:
    """A port whose only socket is a server-side connection in TIME-WAIT: the server closes
    first, as Triton does after answering a readiness probe sent with ``Connection: close``, and
    its listener set SO_REUSEADDR, as Triton's do."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server's side closes first: its end goes to TIME-WAIT
    time.sleep(0.1)
    client.close()
    listener.close()
    return port


@pytest.mark.parametrize("state, refused", [("listening", True), ("time-wait", False)])
def test_a_port_is_in_use_only_while_something_listens(state: str, refused: bool) -> None:
    """Issue 26 C.2: a restart within a minute was refused for connections in TIME-WAIT."""
    if state == "listening":
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
    else:
        holder, port = None, _time_wait_port()
        with socket.socket() as plain:  # the check as it was: a bind without SO_REUSEADDR fails here
            with pytest.raises(OSError):
                plain.bind(("127.0.0.1", port))
    try:
        if refused:
            with pytest.raises(TritonServerError, match="is in use"):
                check_port_free("127.0.0.1", port)
        else:
            check_port_free("127.0.0.1", port)
    finally:
        if holder is not None:
            holder.close()


@pytest.mark.parametrize("host, http_host, warned", [
    ("127.0.0.1", None, False), ("0.0.0.0", None, True), ("0.0.0.0", "127.0.0.1", False),
    ("127.0.0.1", "0.0.0.0", True),
])
def test_serve_warns_when_http_faces_the_network(host: str, http_host: str | None, warned: bool) -> None:
    warning = TritonServer(Path("."), host=host, http_host=http_host, http_port=8000).http_warning()
    assert (warning is not None) == warned
    if warning:
        assert "--http-host 127.0.0.1" in warning and "docs/serving.md" in warning


# -- leftovers: each region a run makes carries its pid; a later run removes those of runs that are gone
# (its folders: tests/test_owned.py)


def test_shared_memory_regions_removed_are_ours_alone(tmp_path: Path) -> None:
    """At stop a run removes its own prefix; at start, those of runs that are gone. Triton's
    default prefix, another live run's, another pid namespace's and a file that only looks like
    ours stay; a pid no process can have is no run (os.kill raised OverflowError: pass 5)."""
    dead, token, ns = dead_pid(), "0123abcd", pid_namespace()
    mine = leftovers.shm_prefix(token)
    names = {
        f"{mine}c3543916-082b": "mine",
        f"resnet_deploy_{ns}_{dead}_deadbeef_c35439": "dead run",
        f"resnet_deploy_{ns}_{os.getpid()}_feedf00d_c35439": "live run",
        f"resnet_deploy_1_{dead}_deadbeef_c35439": "another namespace's",
        f"resnet_deploy_{ns}_99999999999_00000000_x": "no pid",
        "triton_python_backend_shm_region_c3543916": "default prefix",
        "resnet_deploy_notapid_x": "not ours",
    }
    for name in names:
        (tmp_path / name).write_bytes(b"")
    # Folders named like dead runs' regions cannot be unlinked: each stopped the whole scan (pass 6).
    for i in range(20):
        (tmp_path / f"resnet_deploy_{ns}_{dead}_{i:08x}_dir").mkdir()
        (tmp_path / f"resnet_deploy_{ns}_{dead}_{i:08x}_file").write_bytes(b"")
        names[f"resnet_deploy_{ns}_{dead}_{i:08x}_dir"] = "a folder"
        names[f"resnet_deploy_{ns}_{dead}_{i:08x}_file"] = "dead run"
    assert sorted(leftovers.remove_stale_shm(tmp_path)) == sorted(
        n for n, what in names.items() if what in ("dead run", "no pid"))
    assert leftovers.remove_shm(mine, tmp_path) == [f"{mine}c3543916-082b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, what in names.items()
                                                                 if what not in ("mine", "dead run", "no pid"))
    with pytest.raises(ValueError):
        leftovers.remove_shm("triton_python_backend_shm_region_", tmp_path)


@pytest.mark.parametrize("input_name", ["input", "in\"put's", "x; import os", "日本"])
def test_the_client_call_is_one_shell_word_of_python_that_names_the_input(resnet20_onnx: Path, tmp_path: Path,
                                                                         input_name: str) -> None:
    """Issue 26 D.1: built from structure, so a tensor name with quotes stays a name."""
    import ast
    import shlex

    import onnx

    from resnet_deploy.serving.triton.client import client_command

    model = onnx.load(str(resnet20_onnx))
    old = model.graph.input[0].name
    model.graph.input[0].name = input_name
    for node in model.graph.node:
        node.input[:] = [input_name if i == old else i for i in node.input]
    onnx.save(model, str(tmp_path / "m.onnx"))
    words = shlex.split(client_command(tmp_path / "m.onnx", "m", "127.0.0.1:8001"))
    assert words[:2] == ["python", "-c"] and len(words) == 3
    calls = [n for n in ast.walk(ast.parse(words[2]))
             if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "InferInput"]
    assert [ast.literal_eval(c.args[0]) for c in calls] == [input_name]
    assert ast.literal_eval(calls[0].args[1]) == [1, 3, 32, 32]
