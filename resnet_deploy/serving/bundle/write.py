"""The bundle's folder: the model (as it is, INT8, or in the ORT format), model.json, the page
and onnxruntime-web, built beside the target and moved into place when complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import onnx

from ..._atomic import check_distinct, recover, staged_folder
from ..._errors import OnnxModelError, OutputPathError
from ...image_input import IMAGE_INPUT_FORMAT, IMAGE_INPUT_NAME, is_image_input
from ...graph.embedding import is_features_file
from ...graph.io import load_onnx, model_files, model_sha256, read_metadata
from .assets import PAGE, check_page, copy_assets, find_ort_web
from .options import WebBundle, WebBundleOptions, check_options
from .ort_format import ORT_FORMAT_RTOL, ORT_FORMAT_RTOL_INT8, to_ort_format

__all__ = ["write_web_bundle", "page_labels", "CONFIG_NAME", "MAX_LABEL_CHARS"]

CONFIG_NAME = "model.json"


# In every folder a bundle writes: --force replaces a folder holding it, never another folder.
BUNDLE_MARKER = ".resnet-deploy-bundle"
# The page shows a label in one table cell: a model's label of 2 MB filled the page (and model.json).
# A longer label is cut to this many characters, the last an ellipsis, as app.js cuts what it shows.
MAX_LABEL_CHARS = 200


def page_labels(labels: Any) -> tuple[list[str] | None, int]:
    """The labels model.json holds (None without a list of them), each at most
    :data:`MAX_LABEL_CHARS` characters, and how many were cut."""
    if not isinstance(labels, list):
        return None, 0
    text = [str(x) for x in labels]
    cut = sum(len(t) > MAX_LABEL_CHARS for t in text)
    return [t if len(t) <= MAX_LABEL_CHARS else t[: MAX_LABEL_CHARS - 1] + "\u2026" for t in text], cut


def _check_replaceable(output: Path) -> None:
    """An existing --output is replaced only when it is empty or a bundle (its marker in it)."""
    if output.is_dir() and not output.is_symlink() and any(output.iterdir()) and not (output / BUNDLE_MARKER).is_file():
        raise OutputPathError(f"--output {output} holds files that are not a bundle (no {BUNDLE_MARKER} in it): "
                              "--force replaces only a folder bundle wrote; choose another folder or empty it yourself")


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
    check_options(options)
    page = Path(options.page) if options.page is not None else PAGE
    check_page(page)
    recover(output)  # a --force cut short between its renames: the old folder comes back first
    if output.exists() and not output.is_dir():
        raise OutputPathError(f"--output {output} exists and is not a folder")
    if output.exists() and not options.force:
        raise OutputPathError(f"--output {output} already exists; pass --force to replace it")
    check_distinct({}, {"MODEL": model_files(model_path)}, output_dirs={"--output": output})
    _check_replaceable(output)
    model = load_onnx(model_path)
    if not is_image_input(model):
        raise OnnxModelError(f"{model_path} takes preprocessed float tensors; "
                             "the page hands the model images as they are: export it with --image-input "
                             "(or resnet-deploy optimize --image-input)")
    if is_features_file(read_metadata(model, model_path)):  # the page ranks classes; an embedding has none
        raise OnnxModelError(f"{model_path} is a features file: it answers embeddings, not classes, and the page shows "
                             "classes; export the classifier with --image-input for the page, "
                             "or embed with resnet-deploy batch")
    dist, version = find_ort_web(options.node_modules)  # after the model's checks: this may run npm install
    inputs: dict[str, Any] = {"MODEL": model_files(model_path), "the page": page, "node_modules": dist}
    if options.calibration is not None:
        inputs["--calibration"] = options.calibration
    check_distinct({}, inputs, output_dirs={"--output": output})
    metadata = read_metadata(model, model_path)
    notes: list[str] = []
    with staged_folder(output, replace=options.force, shown=f"--output {output}") as staged:
        staging = staged.path
        onnx_file = staging / "model.onnx"
        if options.int8:
            from ...precision.quantize import quantize_file

            say(f"quantizing the classifier to INT8 on {options.calibration}")
            result = quantize_file(model_path, onnx_file, options.calibration, progress=say)
            notes += result.notes
            notes.append(f"INT8: {result.fidelity.describe()} on the {result.samples} calibration inputs")
        elif len(model_files(model_path)) == 1:
            shutil.copyfile(model_path, onnx_file)
        else:  # external data: the page fetches one file
            from ...graph.io import save_onnx

            save_onnx(model, onnx_file)
        model_file = onnx_file
        if options.ort_format:
            say("converting to the ORT format with its optimizations applied offline")
            model_file, rel = to_ort_format(onnx_file, staging / "model.ort",
                                            rtol=ORT_FORMAT_RTOL_INT8 if options.int8 else ORT_FORMAT_RTOL)
            onnx_file.unlink()
            notes.append("ORT format (optimizations applied offline, level extended): "
                         f"logits within {rel:.1e} of the ONNX file on onnxruntime's CPU provider")
        labels, cut = page_labels(metadata.get("labels"))
        if cut:
            notes.append(f"{cut} label{'s' if cut != 1 else ''} longer than {MAX_LABEL_CHARS} characters "
                         f"{'are' if cut != 1 else 'is'} cut to {MAX_LABEL_CHARS} for the page")
        config = _page_config(model, metadata, labels, model_file, model_path, options, version)
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        copy_assets(page, dist, staging)
        (staging / BUNDLE_MARKER).write_text("written by resnet-deploy bundle --web; --force replaces this folder\n")
    size = sum(p.stat().st_size for p in output.rglob("*") if p.is_file())
    return WebBundle(output, output / model_file.name, config, size, tuple(notes))


def _page_config(model: onnx.ModelProto, metadata: dict[str, Any], labels: list[str] | None, model_file: Path,
                 source: Path, options: WebBundleOptions, version: str) -> dict[str, Any]:
    """model.json: what the page reads (the file, its input and output, labels, preprocessing)."""
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
        "labels": labels,
        "weights": str(metadata.get("weights", "")),  # "random init ..." makes the page say its answers mean nothing
        "threads": options.threads,
        "onnxruntime_web": version,
    }
