"""Writing without ever leaving half a result: files (:mod:`.files`) and folders (:mod:`.folders`)."""

import os  # noqa: F401 - tests patch os.fsync through this module

from . import folders
from .files import (
    STALE_AFTER_S, atomic_path, atomic_write_bytes, check_distinct, check_new, check_writable, remove_stale_temporaries,
)

__all__ = ["atomic_write_bytes", "atomic_path", "check_writable", "check_distinct", "check_new", "remove_stale_temporaries",
           "STALE_AFTER_S", "folders"]
