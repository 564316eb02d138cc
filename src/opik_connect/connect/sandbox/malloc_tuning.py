"""glibc malloc settings that let the daemon give back what a large search or index build freed.

By default glibc raises its mmap and trim thresholds after a large block is freed (up to 32 and
64 MB), so each worker thread's arena then keeps up to that much freed memory at its top, which
malloc_trim does not release there: 15-20 MB after one index build of a 50,000-file tree.
Fixed thresholds keep large blocks (file contents) in their own mappings and trim the rest.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 1 << 20
MMAP_THRESHOLD_BYTES = 128 << 10
"""glibc's own initial values; setting them turns its dynamic raising off."""


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


_MALLOPT = _libc_function("mallopt")
_MALLOC_TRIM = _libc_function("malloc_trim")


def fix_malloc_thresholds() -> bool:
    """Turn glibc's dynamic thresholds off for this process; False where there is no glibc."""
    if _MALLOPT is None:
        return False
    return bool(
        _MALLOPT(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and _MALLOPT(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def release_freed_memory() -> None:
    """Give the free pages of every arena back to the system (after a large pass is done)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
