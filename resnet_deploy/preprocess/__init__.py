"""Images in, tensors out: PIL preprocessing as a model's metadata describes it (``images``), and the
class names and sample photograph shipped with the package (``labels``). No torch, no session."""

from .images import *  # noqa: F401,F403
from .images import __all__ as _images
from .labels import *  # noqa: F401,F403
from .labels import __all__ as _labels

__all__ = [*_images, *_labels]
