"""Deployment profiles as data: what ``tune`` measured and chose (``deployment``), read through a
typed allow-list of fields (``schema``), refused on another machine or after the model changed."""

from .deployment import *  # noqa: F401,F403
from .deployment import __all__ as __all__  # noqa: PLE0604 - the names above
