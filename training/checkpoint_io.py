"""Reading the trainer's own Lightning checkpoints without unpickling code.

Lightning ``.ckpt`` files are pickles. They are read here with ``torch.load(weights_only=True)``
and an allow-list that admits, besides tensors and plain containers, only NumPy array
reconstruction (arrays in the loop/RNG state): no other global can be named by the file, so a
foreign or tampered checkpoint is refused with a message instead of running its code.

    python -m training.export runs/hmr/checkpoints/last.ckpt --out weights/hmr.safetensors
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

__all__ = ["SAFE_NUMPY_GLOBALS", "safe_checkpoint_globals", "load_training_checkpoint", "CheckpointRefused"]


def _numpy_globals() -> list:
    import importlib

    names = []
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            names.append(importlib.import_module(mod)._reconstruct)
        except (ImportError, AttributeError):
            pass
    names += [np.ndarray, np.dtype]
    # the concrete dtype classes (numpy ≥ 1.25 pickles dtypes by their class)
    for code in "?bBhHiIlLqQefdgFDG":
        names.append(type(np.dtype(code)))
    return list(dict.fromkeys(names))


SAFE_NUMPY_GLOBALS = _numpy_globals()


class CheckpointRefused(ValueError):
    """The checkpoint names something outside the allow-list (or is not a checkpoint)."""


@contextlib.contextmanager
def safe_checkpoint_globals():
    """Context in which ``torch.load(weights_only=True)`` also accepts NumPy arrays."""
    with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):
        yield


def load_training_checkpoint(path) -> dict:
    """A Lightning checkpoint written by ``python -m training`` → its dict (on the CPU).

    Raises:
        FileNotFoundError: no such file.
        CheckpointRefused: not a checkpoint, or it asks for code outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    from core.models.checkpoints import CheckpointError, read_checkpoint_file

    try:
        with safe_checkpoint_globals():
            ckpt = read_checkpoint_file(path)       # torch.load(weights_only=True), its errors in words
    except CheckpointError as exc:
        raise CheckpointRefused(f"{path} is not a checkpoint of this project's trainer, or it is damaged or "
                                f"tampered with; it was not loaded (nothing in it was run): {exc}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointRefused(f"{path} is not a Lightning checkpoint of this project's trainer "
                                f"(no state_dict / hyper_parameters)")
    return ckpt
