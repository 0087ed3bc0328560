"""Allocator settings that keep an ingest's processes small: Arrow on the C heap, two malloc arenas.

Measured on generated OTLP spans (old and new alternated, the whole process tree sampled every 20 ms),
the peak at 200k and 1M spans went from 610-616 and 775-778 MB to 540-556 and 702-704 MB at no more
CPU (38.1-39.6 → 37.5-38.2 CPU-s at 1M):
- pyarrow's default pool (mimalloc in its wheels) keeps the pages of freed batches for reuse, so each parsing
  process held ~50 MB more than it used. On the system pool, freed batches go back to malloc.
- glibc gives each thread that allocates its own arena, up to eight per core. The writing
  process's threads (Python's, DuckDB's, the pipes' readers) each kept a partly used arena, and the
  writer's peak grew with the time it ran. Two arenas are enough for a writer and its parsers'
  readers.
Only an ingest's own processes are set (the `libra` command's ingest and the parsing processes it
starts), never a notebook that imports Libra, and a value the user set in the environment wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": str(ARENAS)}


def child_env() -> dict[str, str]:
    """The environment for a parsing process: this one's, with the settings above unless already set."""
    return {**ENV, **os.environ}


def lean() -> None:
    """Set this process's allocators as above (a no-op where glibc or pyarrow's pools are missing)."""
    import pyarrow as pa

    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
    if "MALLOC_ARENA_MAX" not in os.environ:
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            if libc is not None and hasattr(libc, "mallopt"):
                libc.mallopt(_M_ARENA_MAX, ARENAS)
        except OSError:  # not glibc: its own allocator, nothing to set
            pass
