"""Headless Chromium on a served bundle: :func:`run_page` opens the page and returns what it
posts, optionally with a screenshot taken over the DevTools protocol."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

from resnet_deploy._errors import RuntimeBackendError
from .server import BundleServer

__all__ = ["run_page", "chromium_path", "CHROMIUM_FLAGS"]

# Flags for headless Chromium as root in a container; nothing of its own is fetched from outside.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio")


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
             window: tuple[int, int] = (900, 640), evaluate: str | None = None) -> dict[str, Any]:
    """Open the served page in headless Chromium with ``query`` (``report=/report`` added) and
    return what it posts; the browser is closed afterwards. With ``screenshot``, the page as it
    shows its result is saved there as PNG (the viewport ``window``, in CSS pixels). With
    ``evaluate``, a JavaScript expression is evaluated in that viewport once the page has posted,
    and its value (as JSON) is the report's ``"evaluated"``."""
    sep = "&" if query else ""
    devtools_needed = screenshot is not None or evaluate is not None
    with _chromium(f"{server.url}index.html?{query}{sep}report=/report", devtools=devtools_needed) as devtools:
        report = server.report(timeout)
        if devtools is not None:
            target = next(t for t in devtools.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            session = devtools.call("Target.attachToTarget",
                                    {"targetId": target["targetId"], "flatten": True})["sessionId"]
            devtools.call("Emulation.setDeviceMetricsOverride", {"width": window[0], "height": window[1],
                                                                 "deviceScaleFactor": 1, "mobile": False}, session)
            if screenshot is not None:
                shot = devtools.call("Page.captureScreenshot", {"format": "png"}, session)
                Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            if evaluate is not None:
                found = devtools.call("Runtime.evaluate", {"expression": evaluate, "returnByValue": True}, session)
                report["evaluated"] = found["result"].get("value")
        return report
