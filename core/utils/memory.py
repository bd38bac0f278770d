"""Giving freed memory back to the operating system.

glibc keeps freed heap memory in its per-thread arenas: after a server thread decoded a
500 MB image, that memory stays counted in the process's resident size, and the next large
upload on another thread adds its own on top. :func:`trim_heap` asks glibc to return what
is free (``malloc_trim(0)``, all arenas); elsewhere (macOS, musl, Windows) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["trim_heap"]


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Return free heap memory to the OS; True when glibc's ``malloc_trim`` ran."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
