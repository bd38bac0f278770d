"""Fixtures shared by several test modules. None is autouse: a module asks for what it needs
(``pytestmark = pytest.mark.usefixtures("one_thread")``, or a test argument)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread while the module runs: its tensors are small, and on a
    shared machine one thread is faster and steadier. The previous count is restored."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def body():
    """The embedded open body, ``load_body("open")``."""
    from core.body import load_body

    return load_body("open")


@pytest.fixture(scope="module")
def lowpoly(body):
    """MeshPose's low-poly template of the open body."""
    from core.models.meshpose import load_lowpoly

    return load_lowpoly(body)
