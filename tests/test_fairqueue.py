"""studio.fairqueue: round-robin between callers, per-caller cap, cancellation."""
import threading
import time
from concurrent.futures import CancelledError

import pytest

from studio.fairqueue import FairQueue, QueueFull


def test_a_busy_caller_does_not_delay_a_newcomer_by_more_than_one_job():
    q = FairQueue(workers=1, max_pending=10)
    gate, order = threading.Event(), []

    def job(name):
        def fn(cancel):
            gate.wait(5)
            order.append(name)
            return name
        return fn

    jobs = [q.submit("busy", job(f"busy{k}")) for k in range(5)]
    time.sleep(0.1)                                  # busy0 is running
    jobs += [q.submit("new", job("new0")), q.submit("other", job("other0"))]
    gate.set()
    assert [j.result(5) for j in jobs][-2:] == ["new0", "other0"]
    assert order[:3] == ["busy0", "new0", "other0"], order


def test_cap_cancel_and_errors():
    q = FairQueue(workers=1, max_pending=2)
    gate = threading.Event()
    started = []

    def fn(cancel):
        started.append(1)
        gate.wait(5)
        if cancel.is_set():
            raise RuntimeError("stopped")
        return 1

    running = q.submit("a", fn)
    time.sleep(0.1)
    waiting = [q.submit("a", fn), q.submit("a", fn)]
    with pytest.raises(QueueFull, match="2 of your requests are already waiting"):
        q.submit("a", fn)
    waiting[0].cancel()                              # dropped before it starts; frees a place
    q.submit("a", fn)
    running.cancel()                                 # running: the job sees the event
    gate.set()
    with pytest.raises(RuntimeError, match="stopped"):
        running.result(5)
    with pytest.raises(CancelledError):
        waiting[0].result(5)
    time.sleep(0.2)
    assert len(started) == 3                         # the cancelled waiting job never ran
