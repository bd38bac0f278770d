"""A fair job queue for the studio's API: no caller can monopolise the workers.

Jobs are queued per caller (the client's address); a worker always takes the next job of
the caller with the fewest running jobs and, among those, the one served longest ago (a
newcomer first), so a caller who sends 20 requests delays another caller by at most one
job per worker, not 20.
A caller may have at most ``max_pending`` jobs waiting; more are refused at once with
:class:`QueueFull`. Each job gets a cancel event: cancelling a job that has not started
drops it; a running job sees the event (the studio checks it at every optimisation step
through the method's progress callback and stops, see :class:`Cancelled`).

Example::

    q = FairQueue(workers=2)
    job = q.submit("10.0.0.7", lambda cancel: work(cancel))
    job.result(timeout=60)
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable

__all__ = ["FairQueue", "Job", "QueueFull", "Cancelled"]


class QueueFull(RuntimeError):
    """The caller already has the maximum number of jobs waiting."""


class Cancelled(RuntimeError):
    """Raised inside a job (by the code that checks the job's cancel event) to stop it."""


class Job:
    """A queued call. ``future`` holds the result; :meth:`cancel` stops it (before or while
    it runs); ``state`` is ``"queued"``, ``"running"`` or ``"done"``."""

    def __init__(self, caller: str, fn: Callable[[threading.Event], Any]):
        self.caller = caller
        self.fn = fn
        self.cancel_event = threading.Event()
        self.future: Future = Future()

    def cancel(self) -> None:
        self.cancel_event.set()
        self.future.cancel()       # only succeeds while queued

    def result(self, timeout: float | None = None) -> Any:
        return self.future.result(timeout)

    @property
    def state(self) -> str:
        return "done" if self.future.done() else "running" if self.future.running() else "queued"


class FairQueue:
    """Round-robin over callers (see module docstring).

    Args:
        workers: jobs run at the same time.
        max_pending: jobs one caller may have waiting (not counting running ones).
    """

    def __init__(self, workers: int = 1, max_pending: int = 4):
        if workers < 1 or max_pending < 1:
            raise ValueError("workers and max_pending must be >= 1")
        self.max_pending = max_pending
        self._cv = threading.Condition()
        self._pending: dict[str, deque[Job]] = {}
        self._running: dict[str, int] = {}
        self._served: dict[str, int] = {}          # caller → tick of its last started job
        self._tick = 0
        self._threads = [threading.Thread(target=self._loop, name=f"fair-queue-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, caller: str, fn: Callable[[threading.Event], Any]) -> Job:
        """Queue ``fn(cancel_event)`` for ``caller``.

        Raises:
            QueueFull: ``caller`` already has ``max_pending`` jobs waiting.
        """
        job = Job(caller, fn)
        with self._cv:
            waiting = self._pending.setdefault(caller, deque())
            waiting_live = sum(1 for j in waiting if not j.future.cancelled())
            if waiting_live >= self.max_pending:
                raise QueueFull(f"{waiting_live} of your requests are already waiting (at most {self.max_pending}); "
                                f"wait for one to finish before sending more")
            waiting.append(job)
            self._cv.notify()
        return job

    def _next(self) -> Job | None:
        """The next job: of the caller with waiting jobs that has the fewest running jobs,
        then the one served longest ago (never served: first)."""
        if not self._pending:
            return None
        best = min(self._pending, key=lambda c: (self._running.get(c, 0), self._served.get(c, -1)))
        waiting = self._pending[best]
        job = waiting.popleft()
        if not waiting:
            del self._pending[best]
        self._tick += 1
        self._served[best] = self._tick
        return job

    def _loop(self) -> None:
        while True:
            with self._cv:
                job = self._next()
                while job is None:
                    self._cv.wait()
                    job = self._next()
                if not job.future.set_running_or_notify_cancel():
                    if job.caller not in self._pending and not self._running.get(job.caller):
                        self._served.pop(job.caller, None)
                    continue                          # cancelled while waiting
                self._running[job.caller] = self._running.get(job.caller, 0) + 1
            try:
                job.future.set_result(job.fn(job.cancel_event))
            except BaseException as e:  # noqa: BLE001 - delivered through the future
                job.future.set_exception(e)
            finally:
                with self._cv:
                    self._running[job.caller] -= 1
                    if not self._running[job.caller]:
                        del self._running[job.caller]
                        if job.caller not in self._pending:      # idle caller: forget it
                            self._served.pop(job.caller, None)
