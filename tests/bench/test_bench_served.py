"""``bench --url`` against servers that misbehave (issue 26 B.4, C.1), played by the fake of
``tests/fake_triton.py``: one that stops answering, ones whose answer cannot be compared, and
ones that answer right the first time and wrong under load. Each is an error row and a non-zero
exit, never a clean measurement or a 15-minute wait.

gRPC rows run wherever ``tritonclient[grpc]`` is installed; HTTP rows need ``tritonclient[http]``
(the serve environment has both: ``.ci/run`` runs this file there too).
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from .._cli_cases import assert_clean_failure, run_cli
from ..cli.test_terminal_text import RAW
from ..fake_triton import ESCAPES, FakeTriton


@pytest.fixture(scope="module")
def model(request: pytest.FixtureRequest) -> Path:
    """The serve environment has no torch to export with: there the exported file CI names."""
    given = os.environ.get("RESNET_DEPLOY_TRITON_MODEL")
    return Path(given) if given and Path(given).is_file() else request.getfixturevalue("resnet20_onnx")


_HTTP = pytest.mark.skipif(importlib.util.find_spec("gevent") is None,
                           reason="tritonclient[http] is not installed here")


def _protocols() -> list[object]:
    return ["grpc", pytest.param("http", marks=_HTTP)]


def _bench(model: Path, url: str, out: Path, *extra: str) -> tuple[object, dict[tuple[str, int], dict]]:
    result = run_cli("bench", model, "--url", url, "--model", "resnet20", "--iterations", "2", "--rounds", "1",
                     "--warmup", "0", "--json", out, *extra)
    records = ({(r["engine"], r["batch_size"]): r for r in json.loads(out.read_text())["results"]}
               if out.exists() else {})
    return result, records


@pytest.mark.parametrize("mode", ["hang", "drip"])
@pytest.mark.parametrize("protocol", _protocols())
def test_a_server_that_stops_answering_fails_its_engine_at_the_first_timeout(model: Path, tmp_path: Path,
                                                                           protocol: str, mode: str) -> None:
    """The server answers readiness and metadata, then never an inference (``hang``) or one byte
    of it every 0.2 s (``drip``: each read returns within the timeout, the request never does):
    the first request gives up after --request-timeout, and the engine's later batch sizes are
    not tried."""
    with FakeTriton(mode) as fake:
        url = f"{protocol}://{fake.grpc if protocol == 'grpc' else fake.http}"
        start = time.monotonic()
        result, records = _bench(model, url, tmp_path / f"{mode}.json", "--batch-size", "1,2,4",
                                 "--request-timeout", "1")
        took = time.monotonic() - start
    print(result.output, f"{took:.1f} s")
    served = f"triton-{protocol}"
    assert result.returncode == 1 and "error: the served model failed in 3 of 3 groups" in result.stderr
    assert "did not answer within 1 s (--request-timeout)" in records[(served, 1)]["error"]
    for batch in (2, 4):
        assert records[(served, batch)]["error"] == "not measured: the server stopped answering at b1"
    assert all(records[("resnet20", b)]["error"] is None for b in (1, 2, 4))  # the in-process file was measured
    assert took < 60  # one timeout, not one per group (each was 900 s over gRPC; a drip over HTTP never ended)


@pytest.mark.parametrize("mode, needle", [
    ("shape", "of shape [1, 5] for a batch of 1; the model file's is [1, 10]: not comparable"),
    ("nan", "answered 10 NaN or infinite values of 10: not comparable"),
    ("inf", "answered 1 NaN or infinite values of 10: not comparable"),
    # wide: any width the file has not
    ("wide", "of shape [1, 1000] for a batch of 1; the model file's is [1, 10]: not comparable"),
    ("int", "answered int64 values; the model file's logits are floating point: not comparable"),
    # Read whole before: 8 GiB claimed took the client to 5.7 GB. The bound of [1, 10] logits: 32
    # bytes a value and 1 MiB (docs/guarantees.md), refused by Content-Length, a capped read, gRPC's limit.
    ("huge", "answered more than the 1048896 bytes bench reads of a reply"),
    ("huge-unsized", "answered more than the 1048896 bytes bench reads of a reply"),
    # 10 values claiming [1, 2^40]: a bare "ValueError: cannot reshape" row before, naming no server.
    ("lying-shape", "answered a reply tritonclient cannot read: ValueError: cannot reshape"),
])
@pytest.mark.parametrize("protocol", _protocols())
def test_an_answer_that_cannot_be_compared_is_an_error_row(model: Path, tmp_path: Path, mode: str, needle: str,
                                                          protocol: str) -> None:
    with FakeTriton(mode) as fake:
        url = f"{protocol}://{fake.grpc if protocol == 'grpc' else fake.http}"
        result, records = _bench(model, url, tmp_path / f"{mode}.json")
    print(result.output)
    row = records[(f"triton-{protocol}", 1)]
    assert needle in row["error"] and row["max_rel_error"] is None
    assert records[("resnet20", 1)]["error"] is None
    assert result.returncode == 1 and "error: the served model failed in 1 of 1 groups" in result.stderr


@_HTTP
def test_a_reply_header_tritonclient_cannot_read_is_an_error_row_naming_the_server(model: Path, tmp_path: Path) -> None:
    """A non-numeric Inference-Header-Content-Length: a bare ValueError row before (pass 4 H18)."""
    with FakeTriton("text-header-length") as fake:
        result, records = _bench(model, f"http://{fake.http}", tmp_path / "r.json")
        error = records[("triton-http", 1)]["error"]
        print(error)
        assert error.startswith(f"RuntimeError: http://{fake.http} "
                                "answered a reply tritonclient cannot read: ValueError")
    assert result.returncode == 1


@pytest.mark.parametrize("protocol, needle", [
    # gRPC's bound is of the decompressed message; it was 2 GiB, and [1, 500000] came as a VerificationError.
    ("grpc", "answered more than the 1048896 bytes bench reads of a reply (infer: compressed, larger decompressed)"),
    # tritonclient decompresses an HTTP reply whole: one never asked for is not read.
    pytest.param("http", "answered POST /v2/models/resnet20/infer compressed (gzip), which bench does not ask for",
                 marks=_HTTP),
])
def test_a_compressed_answer_is_bounded_by_what_it_decompresses_to(model: Path, tmp_path: Path, protocol: str,
                                                                   needle: str) -> None:
    """2 MB of zeros compressed to a few KB, sent unasked: within any bound on the wire."""
    with FakeTriton("gzip") as fake:
        url = f"{protocol}://{fake.grpc if protocol == 'grpc' else fake.http}"
        result, records = _bench(model, url, tmp_path / "gzip.json")
    print(result.output)
    row = records[(f"triton-{protocol}", 1)]
    assert needle in row["error"] and row["max_rel_error"] is None, row["error"]
    assert result.returncode == 1 and "error: the served model failed in 1 of 1 groups" in result.stderr


@pytest.mark.parametrize("mode, needle", [
    ("once-nan", "answered 10 NaN or infinite values of 10 to the input it first answered in finite numbers"),
    ("once-shape", "answered a 'logits' of shape [1, 5] to the input it first answered with [1, 10]"),
    ("once-dtype", "answered float64 to the input it first answered in float32"),
    ("once-wrong", "answered the input it first answered with other numbers: rel err"),  # finite, of the right shape
])
@pytest.mark.parametrize("protocol", _protocols())
def test_a_server_that_answers_wrong_after_its_first_answer_is_an_error_row(model: Path, tmp_path: Path, mode: str,
                                                                            needle: str, protocol: str) -> None:
    """Right once (the answer compared with the baseline), then wrong on every timed request, as a
    server that breaks under load: every timed answer is checked against the first, as every
    request sends the same input."""
    with FakeTriton(mode) as fake:
        url = f"{protocol}://{fake.grpc if protocol == 'grpc' else fake.http}"
        result, records = _bench(model, url, tmp_path / f"{mode}.json")
    print(result.output)
    row = records[(f"triton-{protocol}", 1)]
    assert row["error"] is not None and needle in row["error"] and row["max_rel_error"] is None, row["error"]
    assert records[("resnet20", 1)]["error"] is None
    assert result.returncode == 1 and "error: the served model failed in 1 of 1 groups" in result.stderr


@pytest.mark.parametrize("protocol", _protocols())
def test_a_server_that_answers_wrong_under_concurrent_requests_is_an_error_row(model: Path, tmp_path: Path,
                                                                               protocol: str) -> None:
    """Right for the first answer and each request thread's untimed call, wrong on the requests
    two threads time together: the answers of concurrent requests are checked too."""
    with FakeTriton("late-wrong") as fake:
        url = f"{protocol}://{fake.grpc if protocol == 'grpc' else fake.http}"
        result, records = _bench(model, url, tmp_path / "late.json", "--mode", "throughput", "--concurrency", "2")
    print(result.output)
    row = records[(f"triton-{protocol}", 1)]
    assert row["error"] is not None and row["error"].startswith("round 1: "), row["error"]  # a timed answer
    assert "answered the input it first answered with other numbers: rel err" in row["error"]
    assert result.returncode == 1


@pytest.mark.parametrize("args, needle", [
    (["--request-timeout", "5"], "--request-timeout applies with --url"),
    (["--url", "grpc://127.0.0.1:1", "--request-timeout", "0"], "--request-timeout must be positive"),
    (["--url", "grpc://127.0.0.1:1", "--request-timeout", "nan"], "--request-timeout must be a finite number"),
    (["--url", "grpc://127.0.0.1:1", "--request-timeout", "7200"], "--request-timeout must be between 0 and 3600"),
    # The same server twice: two rows named alike before (a third made a second triton-grpc-HOST:PORT).
    (["--url", "grpc://127.0.0.1:1,grpc://127.0.0.1:1"], "--url names grpc://127.0.0.1:1 twice"),
    (["--url", "127.0.0.1:1,http://127.0.0.1:1"], "--url names http://127.0.0.1:1 twice"),
    (["--url", "grpc://LocalHost:01,grpc://localhost:1"], "--url names grpc://localhost:1 twice"),
])
def test_request_timeout_and_a_repeated_url_are_refused_in_one_line(model: Path, args: list[str], needle: str) -> None:
    result = run_cli("bench", model, *args, "--iterations", "1", "--rounds", "1")
    assert result.returncode == 1 and needle in result.stderr and result.stderr.count("\n") == 1, result.stderr


_NOT_KSERVE = ("in KServe v2 JSON (is it Triton's metrics port? "
               "--url takes the HTTP or gRPC port, 8000 or 8001 by default)")
_REPLIES = [  # mode, protocols, what the one line says after the URL
    # Triton's metrics port (and many another HTTP server) answers 200 to any path: a JSONDecodeError before.
    ("metrics", ["http"], f"did not answer the metadata of model 'resnet20' {_NOT_KSERVE}"),
    # A KeyError or IndexError before, naming neither the server nor what it left out.
    ("no-inputs", ["grpc", "http"], "answered the metadata of model 'resnet20' without any 'inputs'"),
    ("empty-inputs", ["grpc", "http"], "answered the metadata of model 'resnet20' without any 'inputs'"),
    ("no-outputs", ["grpc", "http"], "answered the metadata of model 'resnet20' without any 'outputs'"),
    ("no-stats", ["grpc", "http"], "answered the statistics of model 'resnet20' without any 'model_stats'"),
    ("empty-stats", ["grpc", "http"], "answered the statistics of model 'resnet20' without any 'model_stats'"),
    # Read whole before (8 GiB by Content-Length, 5 MB over gRPC): a reply other than an answer is 4 MiB at most.
    ("huge-meta", ["grpc", "http"], "answered more than the 4194304 bytes bench reads of a reply"),
    # An 'unexpected TimeoutError' (exit 2) before: the check's 5 s ran out inside read_metadata.
    ("slow-meta", ["grpc", "http"], "did not answer the metadata of model 'resnet20': "),
]


@pytest.mark.parametrize("mode, protocol, needle", [
    pytest.param(mode, protocol, needle, id=f"{mode}-{protocol}", marks=[_HTTP] if protocol == "http" else [])
    for mode, protocols, needle in _REPLIES for protocol in protocols])
def test_a_server_whose_replies_are_not_kserve_v2_is_one_line_naming_it(model: Path, tmp_path: Path, mode: str,
                                                                       protocol: str, needle: str) -> None:
    """A port that is not KServe v2's, or a server that leaves out what the protocol promises, is
    refused before any work in one line naming the URL and what was missing."""
    with FakeTriton(mode) as fake:
        url = f"{protocol}://{fake.grpc if protocol == 'grpc' else fake.http}"
        result, records = _bench(model, url, tmp_path / f"{mode}.json")
    print(result.output)
    assert_clean_failure(result, f"error: {url} {needle}")
    assert records == {}  # refused before any work


@pytest.mark.parametrize("protocol", _protocols())
def test_a_servers_error_text_reaches_the_terminal_escaped(model: Path, tmp_path: Path, protocol: str) -> None:
    """Fourth adversarial pass F2 (issue 26 A.4's class): a refusal whose text holds control
    characters retitled the terminal, erased the line and turned it red, in bench's table and its
    final error line. Text from a server is shown as the escapes that name it."""
    with FakeTriton("error-esc") as fake:
        url = f"{protocol}://{fake.grpc if protocol == 'grpc' else fake.http}"
        result, records = _bench(model, url, tmp_path / "esc.json", "--request-timeout", "5")
    print(result.output)
    assert result.returncode == 1 and not RAW.search(result.output), RAW.findall(result.output)
    assert ESCAPES.encode("unicode_escape").decode() in result.stderr
    assert any(ESCAPES in (r["error"] or "") for r in records.values())  # the JSON keeps the text as it is
