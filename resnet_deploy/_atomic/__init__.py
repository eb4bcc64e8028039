"""Writing without ever leaving half a result: output paths checked first (:mod:`.paths`), then
files (:mod:`.files`) and folders (:mod:`.staged`, over :mod:`.folders`) put in place in one step."""


from . import folders
from .files import STALE_AFTER_S, atomic_path, atomic_write_bytes, remove_stale_temporaries
from .paths import check_distinct, check_new, check_writable
from .staged import STAGING_MARKER, Staged, recover, staged_folder

__all__ = ["atomic_write_bytes", "atomic_path", "check_writable", "check_distinct", "check_new",
           "remove_stale_temporaries", "STALE_AFTER_S", "folders", "staged_folder", "recover", "Staged",
           "STAGING_MARKER"]
