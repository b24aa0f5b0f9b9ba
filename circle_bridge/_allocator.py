"""The C allocator's policy for a long-running server process (issue 10: RSS growth).

asyncio reads every socket and pipe into a fresh 256 KiB buffer and shrinks it to what arrived.
glibc serves blocks that large with mmap, but the first time the process frees a larger mmapped
block (imports do) it raises its mmap threshold, up to 32 MiB, and from then on carves these
buffers out of the brk heap. Interleaved with the small blocks that outlive them, they leave holes
the heap never gives back: a `serve --stdio` grew ~0.5 MiB per 200,000 mixed requests while the
Python heap (tracemalloc) stayed flat, and the growth came from the requests that make an upstream
HTTP call. A fixed threshold keeps those buffers in their own mappings, returned on free.
"""

from __future__ import annotations

import os
import sys

MMAP_THRESHOLD = 128 * 1024
"""glibc's own default: blocks this large or larger get their own mapping."""
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
"""Free memory at the top of the heap beyond this goes back to the OS (glibc's dynamic rule)."""
_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3


def fix_mmap_threshold() -> bool:
    """Pin glibc's mmap and trim thresholds (see the module docstring). A no-op elsewhere, and when
    the user tunes them (``GLIBC_TUNABLES``, ``MALLOC_MMAP_THRESHOLD_``): theirs win. True if set."""
    if not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None:
        return False
    if "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", "") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    import ctypes  # only here: `connect` and the client never need it (~0.4 MiB, 3 ms)

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # setting the mmap threshold also stops glibc from raising either threshold again
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
