"""The files a bundle copies beside the model: the page (package data, ``resnet_deploy/data/web``)
and onnxruntime-web's WebAssembly build (``ort.wasm.min.mjs`` and the SIMD-threaded ``.mjs``/``.wasm``
it loads; the default entry point, ``ort.min.mjs``, would also fetch the 28 MB JSEP/WebGPU build,
which a CPU page never runs).

onnxruntime-web is an npm package, not a Python one. It is looked for in ``--node-modules``, then
in this user's cache, then in a checkout's ``examples/web/node_modules``; where none has it and
``npm`` is on PATH, the pinned version is installed into the cache once (no install scripts run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from ..._errors import InputError

__all__ = ["PAGE", "WEB_EXAMPLE", "PAGE_FILES", "ORT_WEB_FILES", "ORT_WEB_VERSION", "ort_web_cache", "find_ort_web",
           "check_page", "copy_assets"]

PAGE = Path(str(resources.files("resnet_deploy") / "data" / "web"))  # installed with the package
WEB_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "web"  # a checkout's npm project (absent in a wheel)
PAGE_FILES = ("index.html", "app.js", "serve.py")
ORT_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEB_VERSION = "1.30.0"  # the version the page is tested with: examples/web/package.json pins the same
NPM_TIMEOUT_S = 600


def ort_web_cache() -> Path:
    """Where a missing onnxruntime-web is installed: ``$XDG_CACHE_HOME`` (or ``~/.cache``)/resnet-deploy."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "resnet-deploy" / f"onnxruntime-web-{ORT_WEB_VERSION}" / "node_modules"


def find_ort_web(node_modules: Path | None = None, *, install: bool = True) -> tuple[Path, str]:
    """onnxruntime-web's ``dist`` folder and version: from ``node_modules`` when given, else from
    the cache or a checkout's examples/web, else installed into the cache with npm."""
    if node_modules is not None:
        return _dist(Path(node_modules), "give --node-modules")
    for root in (ort_web_cache(), WEB_EXAMPLE / "node_modules"):
        if (root / "onnxruntime-web" / "package.json").is_file():
            return _dist(root, f"remove {root} and run again")
    npm = shutil.which("npm")
    if npm is None or not install:
        raise InputError(f"onnxruntime-web {ORT_WEB_VERSION} is not installed: install Node.js's npm "
                         "(the page's runtime comes from npm), or run `npm install --prefix DIR "
                         f"onnxruntime-web@{ORT_WEB_VERSION}` and give --node-modules DIR/node_modules")
    return _dist(_npm_install(npm, ort_web_cache()), "give --node-modules")


def _npm_install(npm: str, target: Path) -> Path:
    """The pinned onnxruntime-web into ``target`` (a node_modules), staged and moved into place."""
    prefix = target.parent
    staging = prefix.with_name(prefix.name + f".{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [npm, "install", "--prefix", str(staging), f"onnxruntime-web@{ORT_WEB_VERSION}", "--ignore-scripts",
               "--no-audit", "--no-fund", "--silent"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise InputError(f"npm could not install onnxruntime-web {ORT_WEB_VERSION}: {exc}") from None
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        said = (done.stderr or done.stdout).strip().splitlines()
        raise InputError(f"npm could not install onnxruntime-web {ORT_WEB_VERSION} into {prefix}: "
                         f"{said[-1] if said else f'exit code {done.returncode}'}; give --node-modules")
    try:
        staging.rename(prefix)
    except OSError:  # another run installed it first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _dist(root: Path, hint: str) -> tuple[Path, str]:
    package = root / "onnxruntime-web"
    if not (package / "package.json").is_file():
        raise InputError(f"onnxruntime-web is not installed in {root}: {hint}")
    missing = [name for name in ORT_WEB_FILES if not (package / "dist" / name).is_file()]
    if missing:
        raise InputError(f"{package / 'dist'} lacks {', '.join(missing)}: "
                         "not an onnxruntime-web build this page can load")
    try:
        version = str(json.loads((package / "package.json").read_text(encoding="utf-8"))["version"])
    except (ValueError, KeyError, OSError) as exc:
        raise InputError(f"cannot read onnxruntime-web's version from {package / 'package.json'}: {exc}") from exc
    return package / "dist", version


def check_page(page: Path) -> None:
    """Refuse a page folder that lacks one of the page's files."""
    missing = [name for name in PAGE_FILES if not (page / name).is_file()]
    if missing:
        raise InputError(f"the page's files {', '.join(missing)} are not in {page}: give --page a folder holding "
                         f"{', '.join(PAGE_FILES)} (the package's own are in {PAGE})")


def copy_assets(page: Path, dist: Path, folder: Path) -> None:
    """The page's files into ``folder``, and onnxruntime-web's from ``dist`` into ``folder/ort``."""
    for name in PAGE_FILES:
        shutil.copyfile(page / name, folder / name)
    (folder / "ort").mkdir()
    for name in ORT_WEB_FILES:
        shutil.copyfile(dist / name, folder / "ort" / name)
