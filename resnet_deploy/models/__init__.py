"""The model zoo. Importing this package registers every model."""

from . import cifar, resnet  # noqa: F401  (import registers the builders)
from ._catalogue import ModelRow, describe_models
from ._factory import count_macs, create_model

__all__ = ["create_model", "count_macs", "describe_models", "ModelRow"]
