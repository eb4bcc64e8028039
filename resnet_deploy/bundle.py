"""A static web page that classifies images in the browser: ``resnet-deploy bundle MODEL --web -o DIR``.

The model must take images as they are (``export --image-input``): the page decodes a chosen or
dropped JPEG/PNG with the browser's own decoder and hands the uint8 RGB pixels to onnxruntime-web
(WebAssembly with SIMD; threads where the page is cross-origin isolated), which resizes, crops and
normalises inside the graph. The folder written holds::

    index.html, app.js   the page (examples/web)
    serve.py             a standard-library server with the COOP/COEP headers threads need
    model.onnx | model.ort
    model.json           what the page reads: the file, its input and output, labels, preprocessing
    ort/                 onnxruntime-web's WebAssembly build: ort.wasm.min.mjs and the SIMD-threaded
                         .mjs/.wasm it loads (14 MB; the default entry point, ort.min.mjs, would also
                         fetch the 28 MB JSEP/WebGPU build, which a CPU page never runs)

What the bundle can choose, measured by ``benchmarks/image_input.py``: INT8 (the classifier
quantized to QDQ by :func:`~resnet_deploy.quantize.quantize_file`, the preprocessing kept float),
onnxruntime's ORT format with its graph optimizations applied offline (``ort_format``), and the
number of threads. SIMD is not a choice: onnxruntime-web ships SIMD builds only (since 1.19).

The folder is built beside the target and moved into place when complete; an existing one is
replaced only with ``force``, swapped in one step (:mod:`._atomic.folders`).

:class:`BundleServer` and :func:`run_page` serve a bundle on 127.0.0.1 and open it in headless
Chromium, for the CI test and the benchmark: the page posts its result back to the server
(``--virtual-time-budget`` would freeze ``performance.now()``).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import onnx

from ._atomic import check_distinct, folders
from ._errors import InputError, OnnxModelError, OutputPathError, ResnetDeployError, RuntimeBackendError, VerificationError
from .image_input_graph import IMAGE_INPUT_FORMAT, IMAGE_INPUT_NAME, is_image_input
from .onnx_io import load_onnx, model_files, model_sha256, read_metadata

__all__ = [
    "WebBundleOptions", "WebBundle", "write_web_bundle", "find_ort_web", "to_ort_format", "BundleServer", "run_page",
    "chromium_path", "CHROMIUM_FLAGS", "ORT_WEB_FILES", "WEB_EXAMPLE", "ORT_FORMAT_RTOL",
]

WEB_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "web"
PAGE_FILES = ("index.html", "app.js", "serve.py")
ORT_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
CONFIG_NAME = "model.json"
MAX_THREADS = 64
# The ORT-format file against the ONNX file it was made from, both on onnxruntime's CPU provider:
# the offline fusions (Conv+Add+Relu into FusedConv, QDQ into QLinearConv) reorder float sums.
ORT_FORMAT_RTOL = 1e-4
ORT_FORMAT_RTOL_INT8 = 5e-2
# Flags for headless Chromium as root in a container; nothing of its own is fetched from outside.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio")


@dataclass(frozen=True)
class WebBundleOptions:
    """What ``bundle --web`` may choose.

    Args:
        int8: quantize the classifier to INT8 QDQ (calibrated on ``calibration``); the
            preprocessing in front of it stays float.
        calibration: a folder of images (or a .npy of preprocessed inputs) for ``int8``.
        ort_format: ship onnxruntime's ORT format with its graph optimizations applied offline
            (level ``extended``: fusions that every CPU runs, no layout of one CPU's own), so the
            page loads it without optimizing again.
        threads: WebAssembly threads the page uses; 0 lets the page choose (every core when it is
            cross-origin isolated, else 1).
        node_modules: where ``onnxruntime-web`` is installed (default: examples/web/node_modules).
        page: the folder of the page's own files (default: examples/web).
        force: replace an existing output folder.
    """

    int8: bool = False
    calibration: Path | None = None
    ort_format: bool = False
    threads: int = 0
    node_modules: Path | None = None
    page: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class WebBundle:
    """A bundle written: its folder, the model file in it, what model.json says, and notes."""

    folder: Path
    model: Path
    config: dict[str, Any]
    size: int  # bytes of every file in the folder
    notes: tuple[str, ...] = field(default_factory=tuple)


def find_ort_web(node_modules: Path | None = None) -> tuple[Path, str]:
    """onnxruntime-web's ``dist`` folder and version, from ``node_modules`` or examples/web's."""
    root = Path(node_modules) if node_modules is not None else WEB_EXAMPLE / "node_modules"
    package = root / "onnxruntime-web"
    if not (package / "package.json").is_file():
        hint = "give --node-modules" if node_modules is not None else f"run `npm ci` in {WEB_EXAMPLE}, or give --node-modules"
        raise InputError(f"onnxruntime-web is not installed in {root}: {hint}")
    missing = [name for name in ORT_WEB_FILES if not (package / "dist" / name).is_file()]
    if missing:
        raise InputError(f"{package / 'dist'} lacks {', '.join(missing)}: not an onnxruntime-web build this page can load")
    try:
        version = str(json.loads((package / "package.json").read_text(encoding="utf-8"))["version"])
    except (ValueError, KeyError, OSError) as exc:
        raise InputError(f"cannot read onnxruntime-web's version from {package / 'package.json'}: {exc}") from exc
    return package / "dist", version


def _check_options(options: WebBundleOptions) -> None:
    if options.int8 and options.calibration is None:
        raise InputError("--int8 needs --calibration: images (or a .npy) to calibrate the INT8 classifier on")
    if options.calibration is not None and not options.int8:
        raise InputError("--calibration is for --int8; drop it, or add --int8")
    if not 0 <= options.threads <= MAX_THREADS:
        raise InputError(f"threads must be 0 (the page chooses) to {MAX_THREADS}, received {options.threads}")


def write_web_bundle(
    model_path: str | Path,
    output: str | Path,
    options: WebBundleOptions = WebBundleOptions(),
    *,
    progress: Callable[[str], None] | None = None,
) -> WebBundle:
    """Write the page, the model and onnxruntime-web's files to the folder ``output``."""
    say = progress or (lambda _msg: None)
    model_path, output = Path(model_path), Path(output)
    _check_options(options)
    page = Path(options.page) if options.page is not None else WEB_EXAMPLE
    missing = [name for name in PAGE_FILES if not (page / name).is_file()]
    if missing:
        raise InputError(f"the page's files {', '.join(missing)} are not in {page}: give --page, the examples/web folder "
                         "of a resnet-deploy checkout")
    dist, version = find_ort_web(options.node_modules)
    old = output.parent / f".{output.name}.old"  # where a replacement without renameat2 sets the old folder aside
    with contextlib.suppress(OSError):
        folders.restore(output, old)  # a --force cut short between its renames: the old folder comes back first
    if output.exists() and not output.is_dir():
        raise OutputPathError(f"--output {output} exists and is not a folder")
    if output.exists() and not options.force:
        raise OutputPathError(f"--output {output} already exists; pass --force to replace it")
    inputs: dict[str, Any] = {"MODEL": model_files(model_path), "the page": page, "node_modules": dist}
    if options.calibration is not None:
        inputs["--calibration"] = options.calibration
    check_distinct({}, inputs, output_dirs={"--output": output})
    model = load_onnx(model_path)
    if not is_image_input(model):
        raise OnnxModelError(f"{model_path} takes preprocessed float tensors; the page hands the model images as they are: "
                             "export it with --image-input (or resnet-deploy optimize --image-input)")
    metadata = read_metadata(model, model_path)
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"output folder's parent does not exist: {parent}")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=parent))
    except OSError as exc:
        raise OutputPathError(f"cannot write in {parent}: {exc.strerror or exc}") from exc
    notes: list[str] = []
    try:
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)  # mkdtemp makes 0700; a web server may run as another user
        onnx_file = staging / "model.onnx"
        if options.int8:
            from .quantize import quantize_file

            say(f"quantizing the classifier to INT8 on {options.calibration}")
            result = quantize_file(model_path, onnx_file, options.calibration, progress=say)
            notes += result.notes
            notes.append(f"INT8: top-1 agreement with fp32 {result.top1_agreement:.1%}, max rel error "
                         f"{result.max_rel_error:.2e} on the {result.samples} calibration inputs")
        elif len(model_files(model_path)) == 1:
            shutil.copyfile(model_path, onnx_file)
        else:  # external data: the page fetches one file
            from .onnx_io import save_onnx

            save_onnx(model, onnx_file)
        model_file = onnx_file
        if options.ort_format:
            say("converting to the ORT format with its optimizations applied offline")
            model_file, rel = to_ort_format(onnx_file, staging / "model.ort", rtol=ORT_FORMAT_RTOL_INT8 if options.int8 else ORT_FORMAT_RTOL)
            onnx_file.unlink()
            notes.append(f"ORT format (optimizations applied offline, level extended): logits within {rel:.1e} of the ONNX file "
                         "on onnxruntime's CPU provider")
        config = _page_config(model, metadata, model_file, model_path, options, version)
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        for name in PAGE_FILES:
            shutil.copyfile(page / name, staging / name)
        (staging / "ort").mkdir()
        for name in ORT_WEB_FILES:
            shutil.copyfile(dist / name, staging / "ort" / name)
        if os.path.lexists(output) and not options.force:  # created while this ran: never replaced without --force
            raise OutputPathError(f"--output {output} already exists; pass --force to replace it")
        folders.move_into_place(staging, output, old)
    except OSError as exc:
        raise OutputPathError(f"could not write {output}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            folders.restore(output, old)
        folders.remove(staging)  # the unused new folder, or after a swap the old one
    size = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
    return WebBundle(output, output / model_file.name, config, size, tuple(notes))


def _page_config(model: onnx.ModelProto, metadata: dict[str, Any], model_file: Path, source: Path, options: WebBundleOptions,
                 version: str) -> dict[str, Any]:
    labels = metadata.get("labels")
    return {
        "model": model_file.name,
        "format": "ort" if options.ort_format else "onnx",
        # An ORT-format file holds the optimized graph: optimizing it again would find nothing to do.
        "graph_optimization": "disabled" if options.ort_format else "all",
        "precision": "int8" if options.int8 else str(metadata.get("precision", "fp32")),
        "source": source.name,
        "source_sha256": model_sha256(source),
        "input": IMAGE_INPUT_NAME,
        "input_format": IMAGE_INPUT_FORMAT,
        "output": model.graph.output[0].name,
        "resize_size": metadata.get("resize_size"),
        "crop_size": metadata.get("crop_size"),
        "labels": [str(x) for x in labels] if isinstance(labels, list) else None,
        "weights": str(metadata.get("weights", "")),  # "random init ..." makes the page say its answers mean nothing
        "threads": options.threads,
        "onnxruntime_web": version,
    }


def to_ort_format(onnx_path: Path, ort_path: Path, *, rtol: float = ORT_FORMAT_RTOL) -> tuple[Path, float]:
    """``onnx_path`` saved in onnxruntime's ORT format with the ``extended`` graph optimizations
    applied, checked against the ONNX file on the photos of
    :func:`~resnet_deploy.image_input_verify.photo_variants` (the same top-1, logits within ``rtol``).

    ``extended``, not ``all``: ``all`` adds the NCHWc layout of the CPU it runs on (AVX-512 blocks
    here), which WebAssembly's kernels do not have. Returns the path and the logits' max rel error.
    """
    import onnxruntime as ort

    from .image_input_verify import photo_variants
    from .verify import compare

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(ort_path)
    so.add_session_config_entry("session.save_model_format", "ORT")
    try:
        ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types, and RuntimeError for file errors
        raise ResnetDeployError(f"onnxruntime could not write the ORT format: {str(exc).splitlines()[0]}") from exc
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(str(onnx_path), plain, providers=["CPUExecutionProvider"])
    candidate = ort.InferenceSession(str(ort_path), plain, providers=["CPUExecutionProvider"])
    worst = 0.0
    for name, photo in photo_variants()[:4]:
        pixels = np.asarray(photo, dtype=np.uint8)[None]
        a = candidate.run(None, {IMAGE_INPUT_NAME: pixels})[0]
        b = reference.run(None, {IMAGE_INPUT_NAME: pixels})[0]
        parity = compare(a, b, rtol=rtol)
        worst = max(worst, parity.max_rel_error)
        if parity.top1_agreement < 1.0 or parity.max_rel_error > rtol:
            raise VerificationError(f"the ORT-format file disagrees with {onnx_path.name} on photo {name!r}: max rel error "
                                    f"{parity.max_rel_error:.2e} (tolerance {rtol:.0e}), top-1 agreement {parity.top1_agreement:.0%}")
    return ort_path, worst


# -- serving and opening a bundle (the CI test and the benchmark) -----------------------------
MAX_REPORT_BYTES = 64 << 20


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm"}
    server: "_Server"

    def end_headers(self) -> None:
        # Cross-origin isolation: browsers give SharedArrayBuffer, and so threads, only to such pages.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self.path != "/report" or not 0 < length <= MAX_REPORT_BYTES:
            self.send_error(400)
            return
        body = self.rfile.read(length)
        self.send_response(204)
        self.end_headers()
        try:
            self.server.reports.put(json.loads(body))
        except ValueError:
            self.server.reports.put({"ok": False, "error": "the page posted a report that is not JSON"})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.server.requests.append((self.command, self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    reports: "queue.Queue[dict[str, Any]]"
    requests: list[tuple[str, str, int]]


class BundleServer:
    """A bundle served on ``http://127.0.0.1:PORT/`` from a thread, cross-origin isolated, taking
    the page's report at ``POST /report``. A context manager; ``requests`` logs what was asked."""

    def __init__(self, folder: str | Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = functools.partial(_Handler, directory=str(folder))
        self._server = _Server((host, port), handler)
        self._server.reports = queue.Queue()
        self._server.requests = []
        self._thread = threading.Thread(target=self._server.serve_forever, name="bundle-server", daemon=True)
        self._thread.start()
        self.url = f"http://{host}:{self._server.server_address[1]}/"

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        return list(self._server.requests)

    def report(self, timeout: float) -> dict[str, Any]:
        """The next report the page posts, or a RuntimeBackendError after ``timeout`` seconds."""
        try:
            return self._server.reports.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeBackendError(f"the page posted no result within {timeout:.0f} s") from None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "BundleServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chromium_path() -> Path | None:
    """The system's Chromium (Debian's ``chromium`` package), if installed."""
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    found = shutil.which("chromium")
    return Path(found) if found else None


@contextlib.contextmanager
def _chromium(url: str, *, devtools: bool = False) -> Iterator[_DevTools | None]:
    """Headless Chromium on ``url`` in a fresh profile; with ``devtools``, its DevTools protocol
    over ``--remote-debugging-pipe`` (file descriptors 3 and 4: no port, no WebSocket)."""
    browser = chromium_path()
    if browser is None:
        raise RuntimeBackendError("Chromium is not installed: apt-get install chromium")
    to_browser, from_browser = (os.pipe(), os.pipe()) if devtools else ((-1, -1), (-1, -1))

    def child_fds() -> None:  # in the child, before exec: the pipe's ends at 3 (commands) and 4 (replies)
        if devtools:
            os.dup2(to_browser[0], 3)
            os.dup2(from_browser[1], 4)

    flags = ("--remote-debugging-pipe",) if devtools else ()
    with tempfile.TemporaryDirectory(prefix="resnet-deploy-chromium-") as profile:
        process = subprocess.Popen([str(browser), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, url],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   # (Python's own descriptors are not inherited (PEP 446); the two dup2'd ones are)
                                   close_fds=not devtools, preexec_fn=child_fds if devtools else None,
                                   start_new_session=True)  # its own process group: its helpers end with it
        channel = None
        if devtools:
            os.close(to_browser[0])
            os.close(from_browser[1])
            channel = _DevTools(os.fdopen(to_browser[1], "wb"), os.fdopen(from_browser[0], "rb"))
        try:
            yield channel
        finally:
            if channel is not None:
                channel.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


class _DevTools:
    """Chromium's DevTools protocol over its pipe: JSON messages each ended by a NUL byte."""

    def __init__(self, writer: Any, reader: Any) -> None:
        self._writer, self._reader = writer, reader
        self._next_id = 0
        self._pending = b""

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._writer.write(json.dumps(message).encode() + b"\0")
        self._writer.flush()
        while True:  # events arrive in between: skip them
            while b"\0" not in self._pending:
                chunk = self._reader.read1(1 << 20)
                if not chunk:
                    raise RuntimeBackendError(f"Chromium closed its DevTools pipe during {method}")
                self._pending += chunk
            raw, self._pending = self._pending.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeBackendError(f"DevTools {method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def close(self) -> None:
        for stream in (self._writer, self._reader):
            with contextlib.suppress(OSError):
                stream.close()


def run_page(server: BundleServer, query: str = "", *, timeout: float = 180.0, screenshot: Path | None = None,
             window: tuple[int, int] = (900, 640)) -> dict[str, Any]:
    """Open the served page in headless Chromium with ``query`` (``report=/report`` added) and
    return what it posts; the browser is closed afterwards. With ``screenshot``, the page as it
    shows its result is saved there as PNG (the viewport ``window``, in CSS pixels)."""
    sep = "&" if query else ""
    with _chromium(f"{server.url}index.html?{query}{sep}report=/report", devtools=screenshot is not None) as devtools:
        report = server.report(timeout)
        if devtools is not None and screenshot is not None:
            target = next(t for t in devtools.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            session = devtools.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
            devtools.call("Emulation.setDeviceMetricsOverride", {"width": window[0], "height": window[1], "deviceScaleFactor": 1,
                                                                 "mobile": False}, session)
            shot = devtools.call("Page.captureScreenshot", {"format": "png"}, session)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        return report
