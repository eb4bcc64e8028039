"""The embedding API: :class:`Predictor`, one onnxruntime session around an exported ResNet."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from .._names import OPENVINO_RUNTIME
from .._errors import InputError, OnnxModelError, RuntimeBackendError
from ..graph.embedding import is_features_file
from ..graph.io import image_input, load_onnx, read_metadata
from ..preprocess.images import ImageLike, Preprocessing
from ..image_input import is_image_input
from .openvino_native import OpenVINOSession
from .raw_images import check_image_batch, check_image_provider, decode, image_batches, stack_one_size
from .execution import Execution
from .answers import Prediction, ranked
from .output_checks import check_outputs
from .model_info import class_names, warn_about_model
from .config import SessionConfig
from .session import open_session

__all__ = ["Predictor", "Prediction"]


class Predictor:
    """One onnxruntime session around an exported ResNet, safe to share between threads.

    Args:
        model_path: an ONNX file; validated before onnxruntime sees it.
        provider: ``auto``, ``cpu``, ``cuda``, ``tensorrt`` or ``openvino``; when None, the
            config's provider (``auto`` by default).
        threads: intra-op threads; when None, the config's (the machine's cores by default).
        config: further session options; ``provider`` and ``threads``, when given, override its own.
        check_placement: on an accelerator, read the node placement from a profile of the
            session's first run and warn when onnxruntime assigned nodes to the CPU.
    """

    def __init__(
        self,
        model_path: str | Path,
        provider: str | None = None,
        threads: int | None = None,
        *,
        config: SessionConfig | None = None,
        check_placement: bool = True,
    ) -> None:
        overrides: dict[str, Any] = {}
        if provider is not None:
            overrides["provider"] = provider
        if threads is not None:
            overrides["threads"] = threads
        self._open(Path(model_path), load_onnx(model_path), replace(config or SessionConfig(), **overrides),
                   check_placement)

    def _open(self, model_path: Path, model: onnx.ModelProto, cfg: SessionConfig, check_placement: bool) -> None:
        """Build the session from ``model`` (already read and validated from ``model_path``)."""
        self.model_path = model_path
        self.metadata = read_metadata(model, self.model_path)
        image = image_input(model, self.model_path)
        # A model made with --image-input takes uint8 RGB [N, H, W, 3] and preprocesses in its graph.
        self.takes_images = is_image_input(model)
        if self.takes_images:
            check_image_provider(cfg.provider, self.model_path)
        self._config = cfg
        self._session, self.provider, self.placement = open_session(model.SerializeToString(), cfg,
                                                                    placement=check_placement)
        # Which runtime executes the model: onnxruntime (any provider, the OpenVINO plugin
        # included) or the OpenVINO runtime itself (provider "openvino" without the plugin).
        self.backend = OPENVINO_RUNTIME if isinstance(self._session, OpenVINOSession) else "onnxruntime"
        self.input_name = image.name
        self.input_shape: tuple[int | None, ...] = image.shape
        if self.backend == OPENVINO_RUNTIME and cfg.static_batch is not None:
            self.input_shape = (cfg.static_batch, *image.shape[1:])
            image = replace(image, shape=self.input_shape)
        self.input_dtype = image.dtype
        self._expected = image.describe()
        output = self._session.get_outputs()[0]
        self.output_name = output.name
        self.num_outputs = output.shape[-1] if output.shape and isinstance(output.shape[-1], int) else None
        self.preprocessing = Preprocessing.from_metadata(
            self.metadata, (None, None) if self.takes_images else (self.input_shape[2], self.input_shape[3]),
            source=self.model_path
        )
        # A features file (export --features) answers with an embedding per image, not class scores.
        self.output_kind = "embedding" if is_features_file(self.metadata) else "logits"
        self.labels = (None if self.output_kind == "embedding"
                       else class_names(self.metadata, self.num_outputs, self.model_path))
        warn_about_model(self, stacklevel=4)
        fixed = self.input_shape[0]
        self._execution = Execution(self._session, self.provider, input_name=self.input_name,
                                    output_name=self.output_name, input_dtype=self.input_dtype, fixed_batch=fixed,
                                    cuda_graph=cfg.cuda_graph, closed_message="this Predictor is closed")
        self._closed = False
        self.profile: Any = None  # the DeploymentProfile when built by from_profile
        self._close_lock = threading.Lock()

    @classmethod
    def from_profile(cls, profile_path: str | Path, *, check_machine: bool = True) -> "Predictor":
        """The configuration ``resnet-deploy tune`` chose on this machine: its model file,
        provider and session options. A profile from another machine, for a model file (or
        external data) that changed since, or holding anything but the fields and session
        options of its schema, is refused (:class:`~resnet_deploy.profile.deployment.ProfileError`).

        The model is read once: the bytes whose SHA-256 matched the profile's are the bytes
        onnxruntime runs."""
        from ..profile.deployment import load_profile, load_profile_model

        profile = load_profile(profile_path, check_machine=check_machine, check_model=False)
        model = load_profile_model(profile, profile_path)
        config = profile.session  # load_profile refused any session key outside SESSION_FIELDS
        predictor = cls.__new__(cls)
        predictor._open(profile.model_path(profile_path), model, config, True)
        predictor.profile = profile
        return predictor

    # -- life cycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the session; the Predictor cannot be used afterwards.

        Safe while other threads run it: a run in progress finishes on the session it holds,
        and every later call (the next chunk of a batch included) says the Predictor is closed."""
        with self._close_lock:
            self._closed = True
            self._execution.close()
            self._session = None  # type: ignore[assignment]

    def __enter__(self) -> "Predictor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inference ----------------------------------------------------------------------------
    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        if self.takes_images:
            return check_image_batch(batch, self.preprocessing)
        if not isinstance(batch, np.ndarray):
            raise InputError(f"expected a numpy array, received {type(batch).__name__}")
        if batch.dtype != self.input_dtype:
            raise InputError(f"input dtype {batch.dtype} does not match the model's "
                             f"{self.input_dtype} {self._expected}")
        if batch.ndim != 4 or any(d is not None and d != s for d, s in zip(self.input_shape[1:], batch.shape[1:])):
            raise InputError(f"input shape {list(batch.shape)} does not match the model's {self._expected}")
        if batch.shape[0] == 0:
            raise InputError("empty batch: the first dimension is 0")
        return np.ascontiguousarray(batch)

    def run(self, batch: np.ndarray, *, release_memory: bool = False) -> np.ndarray:
        """Logits for a batch the model takes: preprocessed ``[N, 3, H, W]``, or uint8 ``[N, H, W, 3]``
        for a model with the preprocessing in its graph.

        A model compiled for a fixed batch size B takes any N: the batch is run in chunks of B,
        the last one padded with copies of its final image, and the padding's rows dropped. The
        run itself is :class:`~resnet_deploy.runtime.execution.Execution`'s, the code the
        benchmark times. ``release_memory``: onnxruntime's CPU arena gives back what the run grew
        it by (by itself after a batch over 32 MiB), for a large request run in pieces.
        """
        if self._closed:
            raise RuntimeBackendError("this Predictor is closed")
        return self._execution.run(self._check_batch(batch), shrink=release_memory)

    def preprocess(self, images: Sequence[ImageLike]) -> np.ndarray:
        """What the model takes for ``images``: float ``[N, 3, H, W]``, or for a model with the
        preprocessing in its graph the decoded uint8 ``[N, H, W, 3]`` (one size per batch)."""
        if self.takes_images:
            names = [str(im) if isinstance(im, (str, Path)) else f"image #{i}" for i, im in enumerate(images)]
            return stack_one_size([decode(im, self.preprocessing) for im in images], names)
        if self.input_dtype.kind != "f":  # normalised pixels cast to integers would still classify, wrongly
            raise OnnxModelError(f"{self.model_path}: input {self.input_name!r} is {self.input_dtype}; images "
                                 "preprocess to floating point, so classifying them needs a float input")
        return self.preprocessing.batch(list(images)).astype(self.input_dtype, copy=False)

    def predict(
        self, images: ImageLike | Sequence[ImageLike], top_k: int = 5, *, batch_size: int | None = None
    ) -> list[list[Prediction]]:
        """Top-k ``(index, label, score)`` per image; score is the softmax probability.

        With ``batch_size``, images are decoded, preprocessed and run that many at a time, so
        memory stays bounded by the batch, not by the number of images.
        """
        if self.output_kind == "embedding":
            raise InputError(f"{self.model_path} outputs embeddings, not classes: it has no top-k; use "
                             "Predictor.embed, or resnet-deploy batch for many images")
        if top_k < 1:
            raise InputError(f"top_k must be at least 1, received {top_k}")
        images = self._image_list(images, batch_size)
        step = batch_size or len(images)
        results: list[list[Prediction]] = []
        for start in range(0, len(images), step):
            results.extend(self._predict_batch(images[start : start + step], top_k))
        return results

    def embed(self, images: ImageLike | Sequence[ImageLike], *, batch_size: int | None = None) -> np.ndarray:
        """The embedding of each image, float32 ``[N, D]``, from a features file (``export --features``;
        unit length when it was exported with ``--normalize``). ``batch_size`` bounds memory as in
        :meth:`predict`."""
        if self.output_kind != "embedding":
            raise InputError(f"{self.model_path} is a classifier: its output is class scores, not an embedding; "
                             "export a features file with resnet-deploy export --features")
        images = self._image_list(images, batch_size)
        step = batch_size or len(images)
        rows = [self._outputs(images[start : start + step]) for start in range(0, len(images), step)]
        return np.concatenate(rows).astype(np.float32, copy=False)

    def _image_list(self, images: ImageLike | Sequence[ImageLike], batch_size: int | None) -> Sequence[ImageLike]:
        if isinstance(images, (str, Path, np.ndarray)) or not isinstance(images, Sequence):
            images = [images]  # type: ignore[list-item]
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise InputError(f"batch_size must be at least 1, received {batch_size!r}")
        if not images:
            raise InputError("no images given")
        return images

    def _outputs(self, images: Sequence[ImageLike]) -> np.ndarray:
        """The model's output rows for ``images``, checked: one finite row per image."""
        out = self._image_logits(images) if self.takes_images else self.run(self.preprocess(images))
        check_outputs(out, images, model_path=self.model_path, output_name=self.output_name,
                      output_kind=self.output_kind)
        return out

    def _image_logits(self, images: Sequence[ImageLike]) -> np.ndarray:
        """Logits of a model with the preprocessing in its graph: the images decoded as they are,
        run by :func:`~resnet_deploy.runtime.raw_images.image_batches` (one size and a bounded
        number of pixels per run), rows back in the order given."""
        rows: list[np.ndarray] = [np.empty(0)] * len(images)
        for indices, batch in image_batches(images, self.preprocessing):
            for i, row in zip(indices, self.run(batch)):
                rows[i] = row
        return np.stack(rows)

    def _predict_batch(self, images: Sequence[ImageLike], top_k: int) -> list[list[Prediction]]:
        return ranked(self._outputs(images), self.labels, top_k)
