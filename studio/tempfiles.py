"""The studio's temporary files: one folder per server process, removed when it exits.

* :func:`process_root` — ``<tmp>/hmr-studio-<pid>-<random>``, created on first use, deleted
  at exit, including exit by SIGTERM (:func:`install_exit_on_sigterm` turns SIGTERM into a
  normal exit so the clean-up runs).
* :func:`request_folder` — a folder for one API request's files; Gradio copies returned
  files into its own cache, so request folders are deleted after :data:`REQUEST_TTL_S`
  (checked at every new request by :func:`sweep_requests`).
* :func:`sweep_orphans` — at start-up: the process folders of servers that were killed
  (SIGKILL, power loss) and the ``hmr-studio-api-*`` folders of older versions. (Stale
  ``.tmp`` files of interrupted atomic writes elsewhere are removed by the next write of
  the same file, :func:`core.utils.io.atomic_open`.)
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

from core.utils.io import pid_alive

__all__ = ["process_root", "request_folder", "sweep_requests", "sweep_orphans", "install_exit_on_sigterm",
           "REQUEST_TTL_S"]

REQUEST_TTL_S = 600.0
"""API request folders older than this (seconds) are deleted."""

_PREFIX = "hmr-studio-"
_ROOT_NAME = re.compile(rf"^{_PREFIX}(?P<pid>\d+)-[0-9a-z_]+$")
_ROOT: Optional[Path] = None
_LOCK = threading.Lock()


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def process_root() -> Path:
    """This process's temporary folder (created on first call, deleted at exit)."""
    global _ROOT
    with _LOCK:
        if _ROOT is None or not _ROOT.is_dir():
            _ROOT = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
            atexit.register(_remove, _ROOT)
        return _ROOT


def request_folder() -> Path:
    """A new folder for one API request's output files (deleted after the TTL)."""
    sweep_requests()
    folder = process_root() / "api" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def sweep_requests(ttl_s: float = REQUEST_TTL_S, now: Optional[float] = None) -> list[Path]:
    """Delete API request folders older than ``ttl_s`` seconds; returns them."""
    api = process_root() / "api"
    if not api.is_dir():
        return []
    now = time.time() if now is None else now
    old = [p for p in api.iterdir() if p.is_dir() and now - p.stat().st_mtime > ttl_s]
    for p in old:
        _remove(p)
    return old


def sweep_orphans(tmp: Optional[Path] = None) -> list[Path]:
    """Remove what killed studio processes left in the temporary directory: their process
    folders (pid no longer running) and old ``hmr-studio-api-*`` request folders (older
    versions, > 1 h old). Nothing else in the shared temporary directory is touched.

    Returns:
        The removed paths.
    """
    tmp = Path(tmp or tempfile.gettempdir())
    removed: list[Path] = []
    for p in tmp.glob(f"{_PREFIX}*"):
        m = _ROOT_NAME.match(p.name)
        try:
            stale_api = p.name.startswith(f"{_PREFIX}api-") and time.time() - p.stat().st_mtime > 3600
        except OSError:   # removed meanwhile
            continue
        if p.is_dir() and ((m and not pid_alive(int(m["pid"])) and p != _ROOT) or stale_api):
            _remove(p)
            removed.append(p)
    return removed


def install_exit_on_sigterm() -> bool:
    """Make SIGTERM exit the process normally (``SystemExit``), so ``atexit`` clean-ups run.

    Only from the main thread and only when SIGTERM still has its default action (a host
    application's own handler is kept). Returns whether the handler was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False

    def _exit(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    return True
