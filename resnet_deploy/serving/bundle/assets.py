"""The files a bundle copies beside the model: the page of examples/web and onnxruntime-web's
WebAssembly build (``ort.wasm.min.mjs`` and the SIMD-threaded ``.mjs``/``.wasm`` it loads; the
default entry point, ``ort.min.mjs``, would also fetch the 28 MB JSEP/WebGPU build, which a CPU
page never runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..._errors import InputError

__all__ = ["WEB_EXAMPLE", "PAGE_FILES", "ORT_WEB_FILES", "find_ort_web", "check_page", "copy_assets"]

WEB_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "web"
PAGE_FILES = ("index.html", "app.js", "serve.py")
ORT_WEB_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


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


def check_page(page: Path) -> None:
    """Refuse a page folder that lacks one of the page's files."""
    missing = [name for name in PAGE_FILES if not (page / name).is_file()]
    if missing:
        raise InputError(f"the page's files {', '.join(missing)} are not in {page}: give --page, the examples/web folder "
                         "of a resnet-deploy checkout")


def copy_assets(page: Path, dist: Path, folder: Path) -> None:
    """The page's files into ``folder``, and onnxruntime-web's from ``dist`` into ``folder/ort``."""
    for name in PAGE_FILES:
        shutil.copyfile(page / name, folder / name)
    (folder / "ort").mkdir()
    for name in ORT_WEB_FILES:
        shutil.copyfile(dist / name, folder / "ort" / name)
